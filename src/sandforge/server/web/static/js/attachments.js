// What goes with the next prompt besides its words: images (pasted, dropped or attached) and,
// from the preview's element picker, the elements the user pointed at. Each shows as a chip
// above the prompt box and can be removed before sending.
import { h, toast } from "./dom.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_IMAGES = 4; // the server's limit (runs/request.py)
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const MAX_ELEMENTS = 5;

/** "h1 · Forged by… · index.html:11", the way a chip (or a sent turn) names a picked element. */
export function elementLabel(element) {
  const where = element.file ? `${element.file}${element.line ? `:${element.line}` : ""}` : "";
  const text = element.text.length > 40 ? `${element.text.slice(0, 39)}…` : element.text;
  return [element.tag || element.selector, text && `“${text}”`, where].filter(Boolean).join(" · ");
}

export function elementChip(element, onRemove) {
  const label = elementLabel(element);
  return h(
    "li",
    { class: "attach-chip element-chip", title: element.selector },
    h("span", { class: "element-ico", "aria-hidden": "true", html: '<svg viewBox="0 0 24 24"><path d="M3 3l7 17 2.5-7.5L20 10z"/></svg>' }),
    h("span", { class: "attach-name" }, label),
    onRemove ? h("button", { type: "button", class: "icon-btn", "aria-label": `Remove ${label}`, onclick: onRemove }, "×") : null,
  );
}


function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export class Attachments {
  /**
   * @param {HTMLFormElement} form  the composer it belongs to: paste and drop land here
   * @param {HTMLElement} list  where the chips show
   * @param {HTMLInputElement} fileInput  the "Attach image" picker
   * @param {HTMLButtonElement} button  opens it
   */
  constructor(form, list, fileInput, button) {
    this.list = list;
    this.images = []; // {name, mediaType, data, url}
    this.elements = []; // {selector, tag, text, file?, line?}: picked in the preview
    button.addEventListener("click", () => fileInput.click());
    fileInput.addEventListener("change", () => {
      this.addFiles([...fileInput.files]);
      fileInput.value = "";
    });
    form.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
      if (!files.length) return;
      event.preventDefault();
      this.addFiles(files);
    });
    form.addEventListener("dragover", (event) => {
      if (![...(event.dataTransfer?.items || [])].some((i) => i.kind === "file")) return;
      event.preventDefault();
      form.classList.add("dropping");
    });
    form.addEventListener("dragleave", () => form.classList.remove("dropping"));
    form.addEventListener("drop", (event) => {
      form.classList.remove("dropping");
      const files = [...(event.dataTransfer?.files || [])];
      if (!files.length) return;
      event.preventDefault();
      this.addFiles(files);
    });
  }

  async addFiles(files) {
    for (const file of files) {
      if (!IMAGE_TYPES.includes(file.type)) {
        toast(`${file.name || "That file"} is not a PNG, JPEG, GIF or WebP image`, "error", 5000);
        continue;
      }
      if (file.size > MAX_IMAGE_BYTES) {
        toast(`${file.name} is over 5 MB: send a smaller image`, "error", 5000);
        continue;
      }
      if (this.images.length >= MAX_IMAGES) {
        toast(`At most ${MAX_IMAGES} images go with one prompt`, "error", 5000);
        return;
      }
      const data = await readBase64(file);
      this.images.push({ name: file.name || "pasted image", mediaType: file.type, data, url: URL.createObjectURL(file) });
    }
    this.render();
  }

  /** The images for the request body: `[{mediaType, data}]`. */
  get payload() {
    return this.images.map(({ mediaType, data }) => ({ mediaType, data }));
  }

  /** An element picked in the preview, for the next prompt. */
  addElement(element) {
    if (this.elements.some((e) => e.selector === element.selector)) return;
    if (this.elements.length >= MAX_ELEMENTS) {
      toast(`At most ${MAX_ELEMENTS} elements go with one prompt`, "error", 5000);
      return;
    }
    this.elements.push(element);
    this.render();
  }

  /** The picked elements for the request body. */
  get elementsPayload() {
    return this.elements.map((e) => ({ ...e }));
  }

  /** The images as shown (object URLs), for the turn that sends them. */
  get urls() {
    return this.images.map((i) => i.url);
  }

  clear() {
    this.images = [];
    this.elements = [];
    this.render();
  }

  removeElement(element) {
    this.elements = this.elements.filter((e) => e !== element);
    this.render();
  }

  remove(image) {
    this.images = this.images.filter((i) => i !== image);
    URL.revokeObjectURL(image.url);
    this.render();
  }

  render() {
    this.list.hidden = this.images.length + this.elements.length === 0;
    this.list.replaceChildren(
      ...this.elements.map((element) => elementChip(element, () => this.removeElement(element))),
      ...this.images.map((image) =>
        h(
          "li",
          { class: "attach-chip" },
          h("img", { src: image.url, alt: "" }),
          h("span", { class: "attach-name" }, image.name),
          h("button", { type: "button", class: "icon-btn", "aria-label": `Remove ${image.name}`, onclick: () => this.remove(image) }, "×"),
        ),
      ),
    );
  }
}
