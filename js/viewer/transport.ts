// The viewer's transport: trajectory selector, first / previous episode / step back / play-pause /
// step forward / next episode / last buttons, playback speed, the step label, playback itself and
// the hotkeys (← → step, shift: 10 steps, space play/pause, Home/End, [ ] episodes).
import { h } from "../model";
import { Viewer } from "./state";

const SPEEDS = [3, 6, 12, 24, 48];
const ICONS: Record<string, string> = {
  play: "M4 2.5v11l9-5.5z",
  pause: "M3.5 2.5h3v11h-3zM9.5 2.5h3v11h-3z",
  first: "M2.5 2.5h2v11h-2zM14 2.5v11l-8.5-5.5z",
  last: "M11.5 2.5h2v11h-2zM2 2.5v11l8.5-5.5z",
  prev: "M12 2.5v11l-9-5.5z",
  next: "M4 2.5v11l9-5.5z",
  prevEp: "M1.5 2.5h1.5v11h-1.5zM9 2.5v11l-5.5-5.5zM15 2.5v11l-5.5-5.5z",
  nextEp: "M13 2.5h1.5v11h-1.5zM1 2.5v11l5.5-5.5zM7 2.5v11l5.5-5.5z",
};

function icon(name: string): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

export interface Transport {
  draw: () => void; // trajectory selector, step label, root's data-frame
  setPlaying: (p: boolean) => void;
}

/** Mount the transport bar (.rlv-transport) into `host` and the hotkeys on the viewer's root. */
export function mountTransport(v: Viewer, host: HTMLElement): Transport {
  const { ctx, model, data, root, frame, traj, nSteps, seek, jumpEpisode } = v;
  const btn = (label: string, title: string, fn: () => void) => {
    const b = h("button", { class: "rlv-btn rlv-icon-btn", title, "aria-label": title, "data-lm-suppress-shortcuts": "true" });
    b.append(icon(label));
    ctx.dom(b, "click", (e: Event) => {
      e.preventDefault();
      fn();
      root.focus({ preventScroll: true });
    });
    return b;
  };
  const playBtn = btn("play", "Play / pause (space)", () => togglePlay());
  const speedSel = h("select", { class: "rlv-select", title: "Playback speed (frames per second)", "data-lm-suppress-shortcuts": "true" });
  for (const s of SPEEDS) speedSel.append(h("option", { value: String(s), text: `${s} fps` }));
  speedSel.value = "12";
  const trajSel = h("select", { class: "rlv-select", title: "Which trajectory (environment) to show", "data-lm-suppress-shortcuts": "true" });
  const stepLabel = h("span", { class: "rlv-step-label" });
  const transport = h("div", { class: "rlv-transport" },
    h("label", { class: "rlv-inline", title: "Trajectory" }, "Trajectory ", trajSel),
    btn("first", "First step (Home)", () => seek(0)),
    btn("prevEp", "Previous episode start ([)", () => jumpEpisode(-1)),
    btn("prev", "Step back (←; shift: 10 steps)", () => seek(frame() - 1)),
    playBtn,
    btn("next", "Step forward (→; shift: 10 steps)", () => seek(frame() + 1)),
    btn("nextEp", "Next episode start (])", () => jumpEpisode(1)),
    btn("last", "Last step (End)", () => seek(nSteps() - 1)),
    speedSel, stepLabel,
    h("span", { class: "rlv-hint", text: "← → step · space play · [ ] episodes" }));
  host.append(transport);

  // Playback: one step per 1/fps seconds on animation frames, synced throttled to 250 ms.
  let timer: number | null = null;
  let last = 0;
  const tick = (now: number) => {
    if (!ctx.local.playing) return;
    const fps = +speedSel.value || 12;
    if (now - last >= 1000 / fps) {
      last = now;
      const T = nSteps();
      const t = frame() + 1;
      if (t >= T) {
        setPlaying(false);
        return;
      }
      ctx.set("frame", t, 250);
    }
    timer = requestAnimationFrame(tick);
  };
  const setPlaying = (p: boolean) => {
    ctx.local.playing = p;
    playBtn.replaceChildren(icon(p ? "pause" : "play"));
    if (p) {
      if (frame() >= nSteps() - 1) ctx.set("frame", 0);
      last = 0;
      timer = requestAnimationFrame(tick);
    } else {
      if (timer !== null) cancelAnimationFrame(timer);
      timer = null;
      model.save_changes();
    }
    ctx.events.emit("playing", p);
  };
  const togglePlay = () => setPlaying(!ctx.local.playing);
  ctx.onDispose(() => timer !== null && cancelAnimationFrame(timer));

  ctx.dom(root, "keydown", (e: KeyboardEvent) => {
    if ((e.target as HTMLElement)?.tagName === "INPUT" && (e.target as HTMLInputElement).type === "text") return;
    if ((e.target as HTMLElement)?.tagName === "SELECT") return;
    const step = e.shiftKey ? 10 : 1;
    let handled = true;
    switch (e.key) {
      case "ArrowLeft": seek(frame() - step); break;
      case "ArrowRight": seek(frame() + step); break;
      case " ": case "Spacebar": togglePlay(); break;
      case "Home": seek(0); break;
      case "End": seek(nSteps() - 1); break;
      case "[": jumpEpisode(-1); break;
      case "]": jumpEpisode(1); break;
      default: handled = false;
    }
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  });

  ctx.dom(trajSel, "change", () => {
    setPlaying(false);
    ctx.set("trajectory", +trajSel.value);
  });

  const draw = () => {
    const s = data.steps();
    const E = s?.E ?? 0;
    if (trajSel.options.length !== E) {
      trajSel.replaceChildren();
      const eps = model.get("trajectory_labels") ?? [];
      for (let e = 0; e < E; e++) trajSel.append(h("option", { value: String(e), text: eps[e] ?? `${e + 1} of ${E}` }));
    }
    trajSel.value = String(traj());
    stepLabel.textContent = s ? `step ${frame()} / ${s.T - 1}` : "";
    root.dataset.frame = String(frame());
  };
  return { draw, setPlaying };
}
