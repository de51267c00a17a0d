// The medical page: key slices with the nodule contours (drawn by puyu_apps.medical.render), the report, the table.
"use strict";
(() => {
  const { $, el, artifactLink } = Puyu;

  function render(r, { artifacts }) {
    const box = $("#result");
    const s = r.study || {};
    const head = el(
      "section",
      { class: "card" },
      el(
        "div",
        { class: "actions" },
        el("span", { class: `badge big cat-${r.lung_rads}`, id: "lung-rads" }, `Lung-RADS ${r.lung_rads}`),
        el("span", {}, r.management),
      ),
      el(
        "p",
        { class: "muted" },
        `${s.modality || "CT"} · ${s.slices} slices · ${(s.shape || []).slice(1).join("×")} px · ` +
          `spacing ${(s.spacing_mm || []).join(" / ")} mm` +
          (r.lung_volume_ml ? ` · lung volume ${Math.round(r.lung_volume_ml)} mL` : ""),
      ),
      r.evaluable
        ? null
        : el("p", { class: "error" }, "Not evaluable: a complete CT series is needed for a nodule assessment."),
      el("p", { class: "links" }, artifactLink(artifacts, "report.html", "Full report (HTML)")),
    );

    const slices = el("section", { class: "card", id: "key-slices" }, el("h2", {}, "Key slices"));
    if (!r.key_images.length) slices.append(el("p", { class: "muted" }, "No nodules: no key slices."));
    for (const k of r.key_images) {
      const n = r.nodules.find((x) => x.index === k.nodule) || {};
      slices.append(
        el(
          "figure",
          {},
          el("img", { src: `data:image/png;base64,${k.png_base64}`, alt: `nodule ${k.nodule}, slice ${k.slice + 1}` }),
          el(
            "figcaption",
            {},
            `Nodule ${k.nodule} · slice ${k.slice + 1} · ${n.type || ""} ${n.mean_diameter_mm ?? ""} mm · ` +
              `${n.lobe || ""} · Lung-RADS ${n.category || ""}`,
          ),
        ),
      );
    }

    const para = (t) => (t || "-").split("\n").map((line) => el("div", {}, line));
    const report = el(
      "section",
      { class: "card", id: "report" },
      el("h2", {}, "Findings"),
      el("div", { id: "findings" }, para(r.findings)),
      el("h2", {}, "Impression"),
      el("div", { id: "impression" }, para(r.impression)),
    );

    const rows = r.nodules.map((n) =>
      el(
        "tr",
        {},
        el("td", {}, n.index),
        el("td", {}, n.type),
        el("td", {}, n.mean_diameter_mm.toFixed(1)),
        el("td", {}, n.type === "part-solid" ? n.solid_diameter_mm.toFixed(1) : "-"),
        el("td", {}, Math.round(n.volume_mm3)),
        el("td", {}, Math.round(n.mean_hu)),
        el("td", {}, n.lobe),
        el("td", {}, `${n.slices[0]}-${n.slices[1]}`),
        el("td", {}, el("span", { class: `badge cat-${n.category}` }, n.category)),
      ),
    );
    const table = el(
      "section",
      { class: "card" },
      el("h2", {}, "Measurements"),
      el(
        "table",
        { id: "nodules" },
        el(
          "tr",
          {},
          ["#", "type", "mean Ø mm", "solid Ø mm", "volume mm³", "mean HU", "location", "slices", "Lung-RADS"].map(
            (h) => el("th", {}, h),
          ),
        ),
        rows,
      ),
      rows.length ? null : el("p", { class: "muted" }, "No nodules were found."),
    );

    const notes = [...(r.flags || []).map((f) => `check: ${f}`), ...(r.warnings || []).map((w) => `warning: ${w}`)];
    const checks = el(
      "section",
      { class: "card" },
      el("h2", {}, "Checks"),
      el(
        "ul",
        { class: "flags" },
        notes.length
          ? notes.map((t) => el("li", {}, t))
          : el("li", {}, "The model's text agrees with the measurements."),
      ),
      el(
        "p",
        { class: "muted" },
        "Timings (s): " +
          Object.entries(r.timings_s || {})
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(" · "),
      ),
    );
    box.append(head, el("div", { class: "grid" }, slices, el("div", {}, report, checks)), table);
  }

  Puyu.app({
    vertical: "medical",
    multiple: true,
    render,
    params: () => {
      const p = { language: $("#language").value };
      if ($("#history").value.trim()) p.history = $("#history").value.trim();
      return p;
    },
    sample: { url: "/samples/medical/series.zip", name: "series.zip" },
  });
})();
