"""The example apps in a real browser: upload the sample inputs, watch the job finish, check what the page shows;
bad uploads show a clear message and the server keeps serving. Screenshots land in tests/artifacts/examples/."""

from __future__ import annotations

import json
import zipfile

import httpx
import pytest

from .conftest import MAX_UPLOAD_MB

pytestmark = pytest.mark.slow


def _image_sizes(page, selector: str) -> list[int]:
    """naturalWidth of every image matched (0: not loaded or broken)."""
    page.wait_for_function(f"[...document.querySelectorAll({selector!r})].every(i => i.complete)")
    return page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.naturalWidth)")


def test_index_lists_the_apps(tab):
    page = tab.open("/apps/")
    for name in ("medical", "legal", "service"):
        assert page.locator(f"a[href='{name}.html']").count() == 1
    page.wait_for_function("document.getElementById('model').textContent.startsWith('model:')")
    tab.shot("index")


def test_medical_series_zip(tab, samples):
    page = tab.open("/apps/medical.html")
    assert "Accepted:" in page.text_content("#accepts")
    page.fill("#history", "Jane Doe, 61, former smoker (40 pack-years).")
    tab.run(samples / "medical" / "series.zip", timeout_s=600)
    assert page.text_content("#lung-rads") == "Lung-RADS 4A"  # solid 9 mm and part-solid 16/7 mm: 4A
    sizes = _image_sizes(page, "#key-slices img")
    assert len(sizes) == 3 and min(sizes) > 128  # one per nodule: the slice and a zoomed crop, contour drawn
    assert page.locator("#nodules tr").count() == 1 + 3
    assert "Lung-RADS" in page.text_content("#impression")
    assert "Jane" not in page.text_content("#result")  # the history's name was scrubbed
    assert page.locator("a[data-artifact='report.html']").count() == 1
    tab.shot("medical")


def test_medical_several_files_are_zipped_in_the_page(tab, tmp_path):
    """Several DICOM files chosen at once travel as one zip built by the page (no suffix needed on each)."""
    from puyu_apps.medical.phantom import make_sample

    paths, _ = make_sample(tmp_path / "series", shape=(12, 96, 96), spacing=(2.5, 2.5, 5.0), seed=3)
    renamed = []
    for i, p in enumerate(paths):  # files named like a scanner's export: IM0001, ...
        target = p.with_name(f"IM{i + 1:04d}")
        p.rename(target)
        renamed.append(target)
    page = tab.open("/apps/medical.html")
    page.set_input_files("#file", renamed)
    assert "12 files" in page.text_content("#chosen")
    tab.run(timeout_s=600)
    assert "12 slices" in page.text_content("#result")
    tab.shot("medical-several-files")


def test_legal_contract(tab, samples):
    pdf = samples / "legal" / "contract_en_digital.pdf"
    truth = json.loads((samples / "legal" / "contract_en_digital.pdf.truth.json").read_text())
    page = tab.open("/apps/legal.html")
    page.fill("#model-clauses", "1")
    tab.run(pdf)
    shown = set(page.eval_on_selector_all("#risks li", "items => items.map(li => li.dataset.category)"))
    assert set(truth["risks"]) <= shown
    sizes = _image_sizes(page, "#pages img")
    assert len(sizes) >= 2 and min(sizes) > 300  # the page images the vertical rendered
    assert page.locator("#pages .box.finding").count() >= len(truth["risks"]) - 2  # clauses highlighted
    assert page.locator("#pages .box.block[data-signed='false']").count() >= 1  # the Client's empty block
    assert page.locator("#pages .box.mark").count() == len(truth["signatures"])
    assert "Client: NOT signed" in page.text_content("#signed")
    assert page.locator("a[data-artifact='report.pdf']").count() == 1
    page.click("#risks li:first-child")  # jumps to the clause's box
    tab.shot("legal")


@pytest.mark.integration
def test_service_call_on_the_embedded_model(real_tab, samples):
    """The real flow: espeak-ng call -> faster-whisper -> sentiment/intent -> SmolLM2 reply -> spoken reply."""
    page = real_tab.open("/apps/service.html")
    real_tab.run(samples / "service" / "refund.wav", timeout_s=300)
    assert "refund" in page.text_content("#transcript").lower()
    assert page.text_content("#intent") == "refund"
    assert page.text_content("#sentiment") in ("negative", "neutral", "positive")
    assert len(page.text_content("#reply").strip()) > 10
    page.wait_for_function("document.querySelector('#reply-audio').readyState >= 1")
    assert page.eval_on_selector("#reply-audio", "a => a.duration") > 0.5  # the spoken reply plays
    assert page.eval_on_selector("#caller-audio", "a => a.duration") > 1.0
    real_tab.shot("service")


def test_service_text_tickets_in_one_conversation(tab):
    page = tab.open("/apps/service.html")
    page.fill("#ticket", "My parcel has not arrived yet, where is the delivery?")
    tab.run()
    assert page.text_content("#intent") == "order_status"
    assert page.locator("#caller-audio").count() == 0 and page.locator("#reply-audio").count() == 1
    first = page.text_content("#session")
    assert first.endswith("turn 1")
    page.check("#same-session")
    page.fill("#ticket", "It is late again and I am really annoyed, this is the second time.")
    tab.run()
    assert page.text_content("#session") == first.replace("turn 1", "turn 2")  # the same conversation
    tab.shot("service-text")


def _error(tab, path: str, files) -> str:
    page = tab.open(path)
    tab.run(files, state="error")
    assert page.is_visible("#error") and page.is_hidden("#result")
    return page.text_content("#error")


def test_bad_uploads_show_a_message_and_the_server_keeps_serving(tab, tmp_path, server, samples):
    cases = {}
    docx = tmp_path / "contract.docx"
    docx.write_bytes(b"PK\x03\x04 not really a Word file")
    cases["wrong-type"] = ("/apps/legal.html", docx, ["not accepted", ".docx"])
    big = tmp_path / "scan.pdf"
    big.write_bytes(b"%PDF-1.7\n" + b"0" * int((MAX_UPLOAD_MB + 0.5) * (1 << 20)))
    cases["too-big"] = ("/apps/legal.html", big, ["too large", f"{int(MAX_UPLOAD_MB)} MB limit"])
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage, the rest is missing")
    cases["corrupt-pdf"] = ("/apps/legal.html", broken, ["could not be processed", "broken.pdf"])
    notes = tmp_path / "series.zip"
    with zipfile.ZipFile(notes, "w") as zf:
        zf.writestr("notes.txt", "these are not DICOM files")
    cases["not-dicom"] = ("/apps/medical.html", notes, ["could not be processed", "DICOM"])
    badzip = tmp_path / "study.zip"
    badzip.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    cases["corrupt-zip"] = ("/apps/medical.html", badzip, ["refused", "not a valid zip"])
    noise = tmp_path / "call.wav"
    noise.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    cases["corrupt-audio"] = ("/apps/service.html", noise, ["could not be processed", "call.wav"])
    for name, (path, upload, expected) in cases.items():
        message = _error(tab, path, upload)
        for text in expected:
            assert text in message, (name, message)
        assert "/jobs/" not in message  # server paths are not shown
        tab.shot(f"error-{name}")
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    page = tab.open("/apps/legal.html")  # and a good upload still works: the page's own sample button
    page.fill("#model-clauses", "0")
    page.wait_for_selector("#sample:not([hidden])")
    page.click("#sample")
    page.wait_for_selector("body[data-state=done]", timeout=300_000)
    assert page.locator("#risks li").count() >= 5
