// A Server-Sent Events parser for fetch() bodies, following the WHATWG event-stream rules:
// lines end in CRLF, LF or CR; ":" starts a comment; "field: value" strips one leading space;
// data lines join with "\n"; a blank line dispatches; `id` persists across events and is
// ignored if it contains NUL; `retry` sets the reconnection delay; a trailing partial event
// at end of stream is discarded.

export class SSEParser {
  /**
   * @param {(event: {id: string, event: string, data: string}) => void} onEvent
   * @param {(ms: number) => void} [onRetry]
   */
  constructor(onEvent, onRetry) {
    this.onEvent = onEvent;
    this.onRetry = onRetry || (() => {});
    this.buffer = "";
    this.sawCR = false;
    this.first = true;
    this.lastEventId = "";
    this.resetEvent();
  }

  resetEvent() {
    this.data = [];
    this.type = "";
    this.hasData = false;
  }

  /** Feed decoded text. */
  push(text) {
    if (this.first && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.first = false;
    }
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 /* \n */) {
        if (this.sawCR) {
          // The LF of a CRLF whose CR ended the previous line.
          this.sawCR = false;
          start = i + 1;
          continue;
        }
        this.line(this.buffer + text.slice(start, i));
        this.buffer = "";
        start = i + 1;
      } else if (c === 13 /* \r */) {
        this.line(this.buffer + text.slice(start, i));
        this.buffer = "";
        start = i + 1;
        this.sawCR = true;
        continue;
      }
      this.sawCR = false;
    }
    this.buffer += text.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case "data":
        this.data.push(value);
        this.hasData = true;
        break;
      case "event":
        this.type = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.onRetry(Number(value));
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  dispatch() {
    if (!this.hasData) {
      this.resetEvent();
      return;
    }
    const event = { id: this.lastEventId, event: this.type || "message", data: this.data.join("\n") };
    this.resetEvent();
    this.onEvent(event);
  }
}

/**
 * Yield SSE events from a fetch Response body as they arrive.
 * Throws what the reader throws (a dropped connection is a TypeError, an abort an AbortError).
 */
export async function* readSSE(response, { onRetry } = {}) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  const queue = [];
  const parser = new SSEParser((event) => queue.push(event), onRetry);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        parser.push(decoder.decode());
        while (queue.length) yield queue.shift();
        return;
      }
      parser.push(decoder.decode(value, { stream: true }));
      while (queue.length) yield queue.shift();
    }
  } finally {
    try {
      reader.releaseLock();
    } catch {
      /* already released */
    }
  }
}
