// The Code tab's editor: CodeMirror 6 (served from /static/vendor/, installed at set-up) with
// the file's language mode. Ctrl/Cmd+S or the Save button saves the file through
// PUT /api/projects/{id}/files/{path}: the server writes it where the project runs and saves a
// version marked as a manual edit.
import {
  EditorState, Compartment, EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection, dropCursor, rectangularSelection, crosshairCursor, defaultKeymap,
  history, historyKeymap, indentWithTab, syntaxHighlighting, classHighlighter, indentOnInput,
  bracketMatching, foldGutter, foldKeymap, closeBrackets, closeBracketsKeymap, autocompletion,
  completionKeymap, searchKeymap, highlightSelectionMatches,
} from "/static/vendor/codemirror.js";
import { languageSupport } from "./languages.js";

// The page's own palette (its CSS variables), so light and dark follow the theme toggle, and
// the same tok-* classes as the chat's code blocks.
const theme = EditorView.theme({
  "&": { color: "var(--text)", backgroundColor: "var(--surface)" },
  ".cm-content": { caretColor: "var(--accent)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--accent)" },
  ".cm-gutters": { backgroundColor: "var(--surface-2)", color: "var(--text-3)", borderRight: "1px solid var(--border)" },
  ".cm-activeLine": { backgroundColor: "color-mix(in srgb, var(--accent) 6%, transparent)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--surface-3)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground": { backgroundColor: "color-mix(in srgb, var(--accent) 22%, transparent)" },
  ".cm-selectionMatch": { backgroundColor: "color-mix(in srgb, var(--accent) 12%, transparent)" },
  ".cm-tooltip": { backgroundColor: "var(--surface)", border: "1px solid var(--border)", color: "var(--text)" },
  ".cm-panels": { backgroundColor: "var(--surface-2)", color: "var(--text)" },
});

export class CodeEditor {
  /**
   * @param {HTMLElement} host  where the editor lives
   * @param {object} hooks
   * @param {(text: string) => void} hooks.onSave  Ctrl/Cmd+S
   * @param {(dirty: boolean) => void} hooks.onDirty  the text differs from the saved file, or again not
   */
  constructor(host, { onSave, onDirty }) {
    this.host = host;
    this.onSave = onSave;
    this.onDirty = onDirty;
    this.saved = "";
    this.dirty = false;
    this.language = new Compartment();
    this.readOnly = new Compartment();
    this.view = null;
  }

  extensions(lang, editable) {
    const support = languageSupport(lang);
    return [
      lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), foldGutter(), drawSelection(),
      dropCursor(), EditorState.allowMultipleSelections.of(true), indentOnInput(), bracketMatching(), closeBrackets(),
      autocompletion(), rectangularSelection(), crosshairCursor(), highlightActiveLine(), highlightSelectionMatches(),
      // Long lines wrap, on a phone too, rather than scroll sideways.
      EditorView.lineWrapping,
      keymap.of([
        { key: "Mod-s", preventDefault: true, run: () => (this.save(), true) },
        ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap,
        ...completionKeymap, indentWithTab,
      ]),
      this.language.of(support ? support : []),
      theme,
      syntaxHighlighting(classHighlighter),
      this.readOnly.of(EditorState.readOnly.of(!editable)),
      EditorView.contentAttributes.of({ "aria-label": "File content" }),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) this.setDirty(update.state.doc.toString() !== this.saved);
      }),
    ];
  }

  /** Show `text` (the file as saved) in `lang`, editable or not. */
  show(text, lang, { editable = true, keepScroll = false } = {}) {
    const scroll = keepScroll && this.view ? this.view.scrollDOM.scrollTop : 0;
    this.saved = text;
    const state = EditorState.create({ doc: text, extensions: this.extensions(lang, editable) });
    if (this.view && this.view.dom.isConnected) this.view.setState(state);
    else {
      this.view = new EditorView({ state });
      this.host.replaceChildren(this.view.dom);
    }
    this.view.scrollDOM.scrollTop = scroll;
    this.setDirty(false);
  }

  get text() {
    return this.view ? this.view.state.doc.toString() : "";
  }

  /** The file was saved with `text`: it is the clean state now. */
  markSaved(text) {
    this.saved = text;
    this.setDirty(this.text !== text);
  }

  save() {
    if (this.dirty) this.onSave(this.text);
  }

  setDirty(dirty) {
    if (dirty === this.dirty) return;
    this.dirty = dirty;
    this.onDirty(dirty);
  }

  /** Something else replaces the editor in its host (a placeholder). */
  detach() {
    this.view?.destroy();
    this.view = null;
    this.setDirty(false);
  }
}
