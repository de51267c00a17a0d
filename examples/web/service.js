// The service page: the caller's words (click one to hear it), sentiment, intent, escalation, and the reply as
// text and as the speech the vertical synthesised (reply.wav).
"use strict";
(() => {
  const { $, el, blobUrl } = Puyu;
  let sessionId = null;

  async function render(r, { artifacts, files }) {
    const box = $("#result");
    sessionId = r.session_id;
    $("#session").textContent = `conversation ${r.session_id}, turn ${r.turn_index}`;

    const caller = files.length
      ? el("audio", { id: "caller-audio", controls: true, src: URL.createObjectURL(files[0]) })
      : null;
    const words = r.words.length
      ? r.words.map((w) =>
          el(
            "span",
            {
              class: `w${w.probability < 0.5 ? " low-conf" : ""}`,
              title: `${w.start.toFixed(2)}-${w.end.toFixed(2)} s, p=${w.probability}`,
              onclick: () => {
                if (caller) {
                  caller.currentTime = w.start;
                  caller.play();
                }
              },
            },
            w.text,
            " ",
          ),
        )
      : [r.transcript];
    const heard = el(
      "section",
      { class: "card" },
      el("h2", {}, r.channel === "voice" ? "What the caller said" : "The ticket"),
      caller,
      el("p", { class: "transcript", id: "transcript" }, words),
      el(
        "p",
        { class: "muted" },
        `${r.channel} · ${r.language}` +
          (r.timings_s.audio ? ` · ${r.timings_s.audio.toFixed(1)} s of audio` : "") +
          (r.timings_s.asr_rtf ? ` · ASR real-time factor ${r.timings_s.asr_rtf.toFixed(2)}` : ""),
      ),
    );

    const score = Math.max(-1, Math.min(1, r.sentiment_score));
    const mood = el(
      "section",
      { class: "card" },
      el("h2", {}, "Mood and intent"),
      el(
        "table",
        {},
        el(
          "tr",
          {},
          el("th", {}, "sentiment"),
          el(
            "td",
            {},
            el(
              "span",
              {
                class: `badge ${r.sentiment === "negative" ? "bad" : r.sentiment === "positive" ? "ok" : ""}`,
                id: "sentiment",
              },
              r.sentiment,
            ),
            ` ${r.sentiment_score >= 0 ? "+" : ""}${r.sentiment_score.toFixed(2)}`,
            el(
              "div",
              { class: "meter" },
              el("i", { style: `left:calc(${(((score + 1) / 2) * 100).toFixed(1)}% - 2px)` }),
            ),
          ),
        ),
        el(
          "tr",
          {},
          el("th", {}, "intent"),
          el(
            "td",
            {},
            el("b", { id: "intent" }, r.intent),
            ` (${Math.round(r.intent_confidence * 100)} %)`,
            r.model_intent
              ? el("span", { class: "muted", id: "model-intent" }, ` · the model says: ${r.model_intent}`)
              : null,
          ),
        ),
        el(
          "tr",
          {},
          el("th", {}, "escalation"),
          el(
            "td",
            { id: "escalation" },
            r.escalated
              ? el("span", { class: "badge bad" }, `to a person: ${r.escalation_reason}`)
              : el("span", { class: "badge ok" }, "handled by the assistant"),
          ),
        ),
        r.voice_features
          ? el(
              "tr",
              {},
              el("th", {}, "voice"),
              el(
                "td",
                {},
                Object.entries(r.voice_features)
                  .map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(2) : v}`)
                  .join(" · "),
              ),
            )
          : null,
      ),
    );

    const replyAudio = artifacts["reply.wav"] ? el("audio", { id: "reply-audio", controls: true }) : null;
    const answer = el(
      "section",
      { class: "card" },
      el("h2", {}, "The answer"),
      el("p", { class: "reply", id: "reply" }, r.reply),
      replyAudio || el("p", { class: "muted" }, "No spoken reply (the server runs without speech synthesis)."),
      el(
        "p",
        { class: "muted" },
        (r.faq_ids.length ? `FAQ entries used: ${r.faq_ids.join(", ")} · ` : "") +
          (r.time_to_first_audio_s ? `first audio after ${r.time_to_first_audio_s.toFixed(2)} s · ` : "") +
          `${r.reply_audio_s.toFixed(1)} s of speech · ticket ${r.ticket_saved ? "saved" : "NOT saved"}`,
      ),
    );
    box.append(el("div", { class: "grid" }, el("div", {}, heard, mood), answer));
    if (replyAudio) replyAudio.src = await blobUrl(artifacts["reply.wav"].url);
  }

  Puyu.app({
    vertical: "service",
    multiple: false,
    render,
    text: () => $("#ticket").value.trim(),
    params: () => {
      const p = {};
      if ($("#language").value) p.language = $("#language").value;
      if ($("#same-session").checked && sessionId) p.session_id = sessionId;
      return p;
    },
    sample: { url: "/samples/service/refund.wav", name: "refund.wav" },
  });
})();
