// A Server-Sent Events parser fed with text chunks as they arrive from a fetch body.
// It follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (a CRLF may be
// split across chunks), ":" starts a comment, repeated "data" lines join with "\n",
// and a blank line dispatches the event.

export interface SseEvent {
  event: string;
  data: string;
  id: string | null;
  retry: number | null;
}

export class SseParser {
  private buffer = "";
  /** A chunk ended in CR: a LF at the start of the next one belongs to that line end. */
  private skipLeadingLf = false;
  private started = false;
  private eventType = "";
  private dataLines: string[] = [];
  private hasData = false;
  private lastId: string | null = null;
  private retry: number | null = null;

  /** Feed a chunk; returns the events it completed, in order. */
  push(chunk: string): SseEvent[] {
    let text = chunk;
    if (this.skipLeadingLf) {
      if (text.startsWith("\n")) text = text.slice(1);
      if (text.length > 0) this.skipLeadingLf = false;
    }
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      const line = this.buffer.slice(start, i);
      if (ch === "\r") {
        if (i + 1 < this.buffer.length) {
          if (this.buffer[i + 1] === "\n") i++;
        } else {
          this.skipLeadingLf = true;
        }
      }
      start = i + 1;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** The stream ended: an event without its blank line is dropped, as the spec says. */
  end(): void {
    this.buffer = "";
    this.reset();
  }

  private line(line: string): SseEvent | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): SseEvent | null {
    if (!this.hasData) {
      this.reset();
      return null;
    }
    const event: SseEvent = {
      event: this.eventType || "message",
      data: this.dataLines.join("\n"),
      id: this.lastId,
      retry: this.retry,
    };
    this.reset();
    return event;
  }

  private reset(): void {
    this.eventType = "";
    this.dataLines = [];
    this.hasData = false;
  }
}
