// What goes with the next prompt besides its words: images (pasted, dropped or attached) and,
// from the preview's element picker, the elements the user pointed at. Each shows as a chip
// above the prompt box and can be removed before sending.
import { h, toast } from "./dom.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_IMAGES = 4; // the server's limit (runs/request.py)
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

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
    button.addEventListener("click", () => fileInput.click());
    this.images = []; // {name, mediaType, data, url}
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

  /** The images as shown (object URLs), for the turn that sends them. */
  get urls() {
    return this.images.map((i) => i.url);
  }

  clear() {
    this.images = [];
    this.render();
  }

  remove(image) {
    this.images = this.images.filter((i) => i !== image);
    URL.revokeObjectURL(image.url);
    this.render();
  }

  render() {
    this.list.hidden = this.images.length === 0;
    this.list.replaceChildren(
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
