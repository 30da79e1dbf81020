// The widget model interface shared by every component, and the per-view context that ties a
// model to local (never synced) UI state such as the hovered legend entry.
import css from "./style.css";
import type { Message, ModelState, TraitName } from "./model_state";

export type { Binary, Bookmark, Example, LabelEvidence, Message, ModelState, OutputOption, RerunInfo, TraitName } from "./model_state";

/** An event callback (Backbone-style events carry event-specific arguments). */
export type Handler = (...args: any[]) => void;

/**
 * The subset of anywidget's AnyModel the components use (also implemented by static_model.ts),
 * typed by ModelState: `get("frame")` is a number (or undefined where the trait is absent).
 */
export interface AnyModel {
  get<K extends TraitName>(name: K): ModelState[K] | undefined;
  set<K extends TraitName>(name: K, value: ModelState[K]): void;
  save_changes(): void;
  on(event: string, cb: Handler): void;
  off(event?: string | null, cb?: Handler | null): void;
  send(content: Message, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

export interface RenderProps {
  model: AnyModel;
  el: HTMLElement;
}

/** Tiny event emitter for view-local state. */
export class Emitter {
  private handlers = new Map<string, Set<Handler>>();
  on(ev: string, cb: Handler): () => void {
    if (!this.handlers.has(ev)) this.handlers.set(ev, new Set());
    this.handlers.get(ev)!.add(cb);
    return () => this.handlers.get(ev)?.delete(cb);
  }
  emit(ev: string, ...args: any[]): void {
    for (const cb of [...(this.handlers.get(ev) ?? [])]) cb(...args);
  }
}

/** Local UI state of one rendered view (hover isolation, playback), shared by its components. */
export interface LocalState {
  hover: number; // legend entry under the pointer (-1: none, K: residual)
  playing: boolean;
}

/**
 * Per-view context: the model, local state, and a registry of disposers so that `render`'s
 * cleanup removes every listener (view removal and hot reload).
 */
export class Ctx {
  readonly local: LocalState = { hover: -1, playing: false };
  readonly events = new Emitter();
  private disposers: (() => void)[] = [];
  private pendingSave: number | null = null;
  private lastSave = 0;
  constructor(readonly model: AnyModel, readonly root: HTMLElement) {}

  /** True in a kernel-less static export (controls that need Python are disabled). */
  get isStatic(): boolean {
    return !!this.model.get("_static");
  }

  has(name: TraitName): boolean {
    return this.model.get(name) !== undefined;
  }

  /** Listen to changes of any of `names` (model traits); removed on dispose. */
  watch(names: TraitName[], cb: Handler): void {
    for (const n of names) {
      const ev = `change:${n}`;
      this.model.on(ev, cb);
      this.disposers.push(() => this.model.off(ev, cb));
    }
  }

  /** Listen to a local event; removed on dispose. */
  listen(ev: string, cb: Handler): void {
    this.disposers.push(this.events.on(ev, cb));
  }

  /** addEventListener that is removed on dispose. */
  dom<K extends keyof HTMLElementEventMap>(
    target: EventTarget, type: K | string, cb: (e: any) => void, opts?: AddEventListenerOptions,
  ): void {
    target.addEventListener(type, cb, opts);
    this.disposers.push(() => target.removeEventListener(type, cb, opts));
  }

  onDispose(cb: () => void): void {
    this.disposers.push(cb);
  }

  /** Set a trait locally (listeners fire now) and sync it to Python, throttled to `ms`. */
  set<K extends TraitName>(name: K, value: ModelState[K], ms = 0): void {
    this.model.set(name, value);
    if (ms <= 0) {
      this.model.save_changes();
      return;
    }
    const now = performance.now();
    if (now - this.lastSave >= ms && this.pendingSave === null) {
      this.lastSave = now;
      this.model.save_changes();
    } else if (this.pendingSave === null) {
      this.pendingSave = window.setTimeout(() => {
        this.pendingSave = null;
        this.lastSave = performance.now();
        this.model.save_changes();
      }, ms);
    }
  }

  setHover(k: number): void {
    if (this.local.hover === k) return;
    this.local.hover = k;
    this.events.emit("hover", k);
  }

  /** The feature currently isolated: the hovered legend entry, else the pinned one. */
  isolated(): number {
    if (this.local.hover >= 0) return this.local.hover;
    const pinned = this.model.get("isolated_feature");
    return typeof pinned === "number" ? pinned : -1;
  }

  dispose(): void {
    if (this.pendingSave !== null) {
      clearTimeout(this.pendingSave);
      this.model.save_changes();
    }
    for (const d of this.disposers.splice(0).reverse()) {
      try {
        d();
      } catch {
        /* already gone */
      }
    }
  }
}

const STYLE_ID = "rlv-style-v1";

/** Insert the shared stylesheet once per document. */
/** The anywidget entry of a component: one Ctx per view, the given mounts, cleanup on removal. */
export function widgetEntry(
  ...mounts: Array<(ctx: Ctx, el: HTMLElement) => unknown>
): { render: (props: RenderProps) => () => void } {
  return {
    render({ model, el }: RenderProps): () => void {
      const ctx = new Ctx(model, el);
      el.classList.add("rlv-root");
      for (const mount of mounts) mount(ctx, el);
      return () => ctx.dispose();
    },
  };
}

export function ensureStyle(doc: Document = document): void {
  if (doc.getElementById(STYLE_ID)) return;
  const s = doc.createElement("style");
  s.id = STYLE_ID;
  s.textContent = css;
  doc.head.appendChild(s);
}

/** Create an element with classes, attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, any> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style" && typeof v === "object") Object.assign(e.style, v);
    else if (k in e && typeof v !== "string") (e as any)[k] = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** A titled section used by every component. */
export function panel(title: string, help?: string): { root: HTMLElement; body: HTMLElement } {
  const body = h("div", { class: "rlv-panel-body" });
  const head = h("div", { class: "rlv-panel-title" }, title);
  if (help) head.append(h("span", { class: "rlv-help", title: help, text: "?" }));
  const root = h("section", { class: "rlv-panel" }, head, body);
  return { root, body };
}

/** Coalesce redraw requests into one per animation frame. */
export function scheduler(fn: () => void): { request: () => void; now: () => void; cancel: () => void } {
  let id: number | null = null;
  const run = () => {
    id = null;
    fn();
  };
  return {
    request: () => {
      if (id === null) id = requestAnimationFrame(run);
    },
    now: () => {
      if (id !== null) cancelAnimationFrame(id);
      run();
    },
    cancel: () => {
      if (id !== null) cancelAnimationFrame(id);
      id = null;
    },
  };
}
