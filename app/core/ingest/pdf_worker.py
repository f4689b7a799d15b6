"""Child-process side of PDF reading with PDFium: text per page, page images, decrypted copies.

Run by `app.core.ingest.sandbox.run_worker` as a script (`python -I pdf_worker.py`): it imports
only the standard library, pypdfium2 and Pillow — never `app` — and limits its own memory before
PDFium is loaded, so a decompression bomb fails here instead of exhausting the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# `-I` leaves this folder off sys.path; appended, so it can shadow nothing installed.
sys.path.append(str(Path(__file__).resolve().parent))
if TYPE_CHECKING:  # the same file, under the package name the type checker knows
    from app.core.ingest import sandbox_child
else:
    import sandbox_child  # the shared child side, standard library only

# PDFium's load errors (FPDF_GetLastError) as the parent understands them.
_LOAD_ERRORS = {2: "file", 3: "format", 4: "password", 5: "security"}
_NOT_ENCRYPTED = -1


def main() -> int:
    """Read one JSON request on stdin, do it, write `result.json` into its `out_dir`."""
    return sandbox_child.serve(_handle)


def _handle(request: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    # Imported here, after `serve` has limited this process, so PDFium loads under the limits.
    import pypdfium2 as pdfium

    action = _ACTIONS[request["action"]]
    return action(pdfium, request, out_dir)


def _open(pdfium: Any, request: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """The document, or None and the error answer."""
    try:
        return pdfium.PdfDocument(request["path"], password=request.get("password")), None
    except pdfium.PdfiumError as exc:
        error = _LOAD_ERRORS.get(getattr(exc, "err_code", None) or 0, "unknown")
        return None, {"ok": False, "error": error, "message": str(exc)}


def _extract_text(pdfium: Any, request: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Text of the first `max_pages` pages, up to `max_text_bytes` in all."""
    document, error = _open(pdfium, request)
    if error is not None:
        return error
    max_pages = int(request["max_pages"])
    budget = int(request["max_text_bytes"])
    page_count = len(document)
    pages: list[str] = []
    text_truncated = False
    for index in range(min(page_count, max_pages)):
        page = document[index]
        textpage = page.get_textpage()
        text = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
        textpage.close()
        page.close()
        encoded = text.replace("\x00", "").encode("utf-8", errors="replace")
        if len(encoded) > budget:
            encoded = encoded[:budget]
            text_truncated = True
        budget -= len(encoded)
        pages.append(encoded.decode("utf-8", errors="ignore"))
        if text_truncated:
            break
    encrypted = pdfium.raw.FPDF_GetSecurityHandlerRevision(document.raw) != _NOT_ENCRYPTED
    decrypted = ""
    if encrypted and request.get("decrypted_copy"):
        # Stored instead of the original, so page images later need no password.
        decrypted = "decrypted.pdf"
        document.save(str(out_dir / decrypted), flags=pdfium.raw.FPDF_REMOVE_SECURITY)
    document.close()
    return {
        "ok": True,
        "page_count": page_count,
        "pages": pages,
        "text_truncated": text_truncated,
        "encrypted": encrypted,
        "decrypted_file": decrypted,
    }


def _render_pages(pdfium: Any, request: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """PNG files of the requested 1-based pages, each at most `max_side` pixels on a side."""
    document, error = _open(pdfium, request)
    if error is not None:
        return error
    page_count = len(document)
    rendered: list[dict[str, Any]] = []
    missing: list[int] = []
    for number in request["pages"]:
        if not 1 <= number <= page_count:
            missing.append(number)
            continue
        page = document[number - 1]
        width, height = page.get_size()
        scale = min(float(request["scale"]), float(request["max_side"]) / max(width, height, 1.0))
        image = page.render(scale=scale).to_pil().convert("RGB")
        page.close()
        file_name = f"page-{number}.png"
        image.save(out_dir / file_name, format="PNG")
        rendered.append({"page": number, "file": file_name})
    document.close()
    return {"ok": True, "page_count": page_count, "rendered": rendered, "missing": missing}


_ACTIONS = {"text": _extract_text, "render": _render_pages}


if __name__ == "__main__":
    sys.exit(main())
