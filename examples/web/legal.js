// The legal page: page images (rendered by the legal vertical) with the flagged clauses highlighted and the
// signature blocks and marks boxed, beside the risk list. Boxes are page fractions, as in ContractReview.to_html.
"use strict";
(() => {
  const { $, el, blobUrl, artifactLink } = Puyu;
  const COLOUR = { high: "#d62728", medium: "#ff7f0e", low: "#1f77b4" };
  const ORDER = { high: 0, medium: 1, low: 2 };
  const pct = (v) => `${(v * 100).toFixed(2)}%`;
  const count = (marks, kind) => marks.filter((m) => m.kind === kind).length;

  function boxDiv([x0, y0, x1, y1], cls, colour, title, extra = {}) {
    return el("div", {
      class: `box ${cls}`,
      title,
      ...extra,
      style:
        `left:${pct(x0)};top:${pct(y0)};width:${pct(x1 - x0)};height:${pct(y1 - y0)};border-color:${colour};` +
        (cls === "finding" ? `background:${colour}2e;` : "") +
        (cls === "block" ? "border-style:dashed;" : ""),
    });
  }

  async function render(r, { artifacts }) {
    const box = $("#result");
    const findings = [...r.findings].sort((a, b) => ORDER[a.severity] - ORDER[b.severity] || a.page - b.page);
    const signed = Object.entries(r.parties_signed || {});
    const src = { text: 0, ocr: 0, empty: 0 };
    r.pages.forEach((p) => {
      src[p.source] += 1;
    });

    const summary = el(
      "section",
      { class: "card", id: "summary" },
      el("h2", {}, `${r.n_pages} page(s), ${r.clauses.length} clause(s), ${findings.length} finding(s)`),
      el(
        "table",
        {},
        el(
          "tr",
          {},
          el("th", {}, "parties"),
          el("td", {}, r.parties.map((p) => `${p.role}: ${p.name}`).join("; ") || "(none found)"),
        ),
        el("tr", {}, el("th", {}, "effective date"), el("td", {}, r.effective_date || "(none found)")),
        el("tr", {}, el("th", {}, "term"), el("td", {}, r.term || "(none found)")),
        el(
          "tr",
          {},
          el("th", {}, "amounts"),
          el("td", {}, r.amounts.map((a) => `${a.value.toLocaleString()} ${a.currency}`).join("; ") || "-"),
        ),
        el(
          "tr",
          {},
          el("th", {}, "governing law"),
          el("td", {}, [r.governing_law, r.jurisdiction].filter(Boolean).join(" · ") || "(none found)"),
        ),
        el(
          "tr",
          {},
          el("th", {}, "signatures"),
          el(
            "td",
            { id: "signed" },
            signed.length
              ? signed.map(([party, ok]) =>
                  el("span", { class: `badge ${ok ? "ok" : "bad"}` }, `${party}: ${ok ? "signed" : "NOT signed"}`),
                )
              : "no parties found",
            " ",
            `${count(r.signatures, "signature")} signature(s), ${count(r.signatures, "seal")} seal(s)`,
          ),
        ),
        el(
          "tr",
          {},
          el("th", {}, "pages"),
          el("td", {}, `${src.text} with a text layer, ${src.ocr} read by OCR, ${src.empty} without text`),
        ),
      ),
      r.warnings.length
        ? el(
            "ul",
            { class: "flags" },
            r.warnings.map((w) => el("li", {}, w)),
          )
        : null,
      el(
        "p",
        { class: "links" },
        artifactLink(artifacts, "report.pdf", "Annotated PDF"),
        artifactLink(artifacts, "report.html", "HTML report"),
      ),
    );

    const risks = el(
      "ol",
      { class: "risks", id: "risks" },
      findings.map((f, i) =>
        el(
          "li",
          {
            class: f.severity,
            "data-category": f.category,
            "data-page": f.page,
            onclick: () => flash(i),
          },
          el("span", { class: `badge ${f.severity}` }, f.severity),
          " ",
          el("b", {}, f.category.replaceAll("_", " ")),
          el("span", { class: "muted" }, ` · page ${f.page}`),
          el("div", {}, f.reason),
          f.explanation ? el("div", { class: "model" }, `Model: ${f.explanation}`) : null,
          f.clause_text
            ? el(
                "div",
                { class: "clause" },
                f.clause_text.length > 220 ? f.clause_text.slice(0, 220) + "..." : f.clause_text,
              )
            : null,
        ),
      ),
    );

    const pages = el("div", { class: "pages", id: "pages" });
    const names = Object.keys(artifacts)
      .filter((n) => /^page-\d+\.png$/.test(n))
      .sort((a, b) => parseInt(a.slice(5)) - parseInt(b.slice(5)));
    for (const name of names) {
      const page = parseInt(name.slice(5));
      const img = el("img", { alt: `page ${page}` });
      const div = el("div", { class: "page", "data-page": page }, img, el("span", { class: "no" }, `page ${page}`));
      findings.forEach((f, i) => {
        if (f.page === page && f.source !== "check")
          div.append(boxDiv(f.box, "finding", COLOUR[f.severity], `${f.category}: ${f.reason}`, { "data-finding": i }));
      });
      r.signature_blocks.forEach((b) => {
        if (b.page === page)
          div.append(
            boxDiv(
              b.box,
              "block",
              b.signed ? "#2ca02c" : "#d62728",
              `signature block '${b.label}' (${b.party || "?"}): ${b.signed ? "signed" : "EMPTY"}`,
              { "data-signed": String(b.signed) },
            ),
          );
      });
      r.signatures.forEach((m) => {
        if (m.page === page) div.append(boxDiv(m.box, "mark", "#9467bd", `${m.kind} ${m.confidence.toFixed(2)}`));
      });
      pages.append(div);
      img.src = await blobUrl(artifacts[name].url);
    }
    const legend = el(
      "p",
      { class: "legend" },
      ...[
        ["#d62728", "high risk"],
        ["#ff7f0e", "medium"],
        ["#1f77b4", "low"],
        ["#2ca02c", "signed block"],
        ["#d62728", "empty block (dashed)"],
        ["#9467bd", "signature / seal"],
      ].map(([c, t]) => el("span", {}, el("i", { style: `background:${c}` }), t)),
    );

    box.append(
      summary,
      el(
        "div",
        { class: "grid" },
        el(
          "section",
          { class: "card" },
          el("h2", {}, "Pages"),
          legend,
          names.length ? pages : el("p", { class: "muted" }, "No page images were kept."),
        ),
        el(
          "section",
          { class: "card" },
          el("h2", {}, "Risks"),
          findings.length ? risks : el("p", {}, "No risky clauses were flagged."),
        ),
      ),
    );
  }

  function flash(i) {
    const target = document.querySelector(`[data-finding="${i}"]`);
    if (!target) return;
    target.scrollIntoView({ behavior: "smooth", block: "center" });
    target.classList.add("flash");
    setTimeout(() => target.classList.remove("flash"), 1500);
  }

  Puyu.app({
    vertical: "legal",
    multiple: false,
    render,
    params: () => {
      // the base model explains flagged clauses (max_explanations); with the legal adapter the model reviews
      // clauses, flagged ones first (max_reviews): one bound for both
      const n = Number($("#model-clauses").value || 0);
      const p = { lang: $("#lang").value, max_explanations: n, max_reviews: n };
      if ($("#password").value) p.password = $("#password").value;
      return p;
    },
    sample: { url: "/samples/legal/contract_en_digital.pdf", name: "contract_en_digital.pdf" },
  });
})();
