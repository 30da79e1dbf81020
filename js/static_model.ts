// A kernel-less model for static HTML exports: holds the widget state in memory, fires the same
// change events as a live model, and drops messages to Python (controls that need the kernel are
// disabled because `_static` is true).
import { AnyModel, Handler, ModelState, TraitName } from "./model";
import { fromBase64 } from "./decode";

export interface StaticPayload {
  state: Record<string, unknown>; // the widget state as JSON (binary traits as placeholders)
  buffers: { path: (string | number)[]; data: string }[]; // base64
}

export class StaticModel implements AnyModel {
  private handlers = new Map<string, Set<Handler>>();
  constructor(private state: Partial<ModelState>) {}

  static fromPayload(p: StaticPayload): StaticModel {
    const state: Record<string, unknown> = { ...p.state, _static: true };
    for (const b of p.buffers ?? []) {
      const bytes = fromBase64(b.data);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let obj: any = state;
      for (let i = 0; i < b.path.length - 1; i++) obj = obj[b.path[i]];
      obj[b.path[b.path.length - 1]] = view;
    }
    return new StaticModel(state as Partial<ModelState>);
  }

  get<K extends TraitName>(name: K): ModelState[K] | undefined {
    return this.state[name];
  }

  set<K extends TraitName>(name: K, value: ModelState[K]): void {
    const old = this.state[name];
    this.state[name] = value;
    if (old !== value) {
      this.emit(`change:${name}`, this, value);
      this.emit("change", this);
    }
  }

  save_changes(): void {}

  on(event: string, cb: Handler): void {
    for (const ev of event.split(/\s+/)) {
      if (!this.handlers.has(ev)) this.handlers.set(ev, new Set());
      this.handlers.get(ev)!.add(cb);
    }
  }

  off(event?: string | null, cb?: Handler | null): void {
    if (!event) {
      this.handlers.clear();
      return;
    }
    for (const ev of event.split(/\s+/)) {
      if (cb) this.handlers.get(ev)?.delete(cb);
      else this.handlers.delete(ev);
    }
  }

  send(): void {}

  private emit(ev: string, ...args: unknown[]): void {
    for (const cb of [...(this.handlers.get(ev) ?? [])]) cb(...args);
  }
}
