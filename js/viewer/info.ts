// The viewer's step information: step, episode, action taken, last reward, value (original →
// edited), advantage and the selected output at the shown step.
import { h } from "../model";
import { fmt } from "../plot";
import { Viewer } from "./state";

const infoRow = (k: string, v: string, title = "", cls = "") =>
  h("div", { class: `rlv-info-row ${cls}`, title }, h("span", { class: "rlv-info-k", text: k }), h("span", { class: "rlv-info-v", text: v }));

/** Mount the information rows (.rlv-info) into `host`; `draw` fills them for the shown step. */
export function mountInfo(v: Viewer, host: HTMLElement): { draw: () => void } {
  const { model, data } = v;
  const info = h("div", { class: "rlv-info" });
  host.append(info);

  const draw = () => {
    const s = data.steps();
    if (!s) {
      info.replaceChildren(h("div", { class: "rlv-empty", text: "No trajectory loaded." }));
      return;
    }
    const e = Math.min(v.traj(), s.E - 1);
    const t = Math.min(v.frame(), s.T - 1);
    const i = e * s.T + t;
    const names = model.get("action_names") ?? [];
    const glyphs = model.get("action_glyphs") ?? [];
    const a = s.actions[i];
    // Episode index within the trajectory and step within the episode.
    let ep = 0;
    let start = 0;
    for (let u = 1; u <= t; u++) if (s.firsts[e * s.T + u]) {
      ep++;
      start = u;
    }
    const lastReward = t > 0 ? s.rewards[i - 1] : 0;
    const ed = data.editedFor(e);
    const out = data.outputSpec();
    const outLabel = model.get("output_label") || out;
    const rows: HTMLElement[] = [
      infoRow("Step", `${t} / ${s.T - 1}`, "Step within this trajectory"),
      infoRow("Episode", `${ep + 1} · step ${t - start}`, "Episode number within this trajectory, and step within the episode"),
      infoRow("Next action", `${glyphs[a] ?? ""} ${names[a] ?? a}`, "The action the agent took from this observation"),
      infoRow("Last reward", fmt(lastReward), "Reward received on the previous step", lastReward > 0 ? "rlv-good" : ""),
      infoRow("Value V(s)", ed ? `${fmt(s.values[i])} → ${fmt(ed.values[t])}` : fmt(s.values[i]),
        ed ? "Original → edited value" : "The value function's estimate at this step", ed ? "rlv-edited-text" : ""),
      infoRow("Advantage", fmt(s.advantages[i]), "GAE advantage of the action taken (γ 0.999, λ 0.95)"),
    ];
    if (out !== "value" && s.A) {
      const series = data.outputSeries(e, s.values, s.logits, e * s.T, s.T, s.A);
      rows.push(infoRow("Output", `${fmt(series[t])}`, `Selected output: ${outLabel}`));
    }
    info.replaceChildren(...rows);
  };
  return { draw };
}
