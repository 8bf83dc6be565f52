"""The system's headless Chromium (Debian's `chromium`), for printing a report to PDF and for the
tests that look at a page as a person does. Never a downloaded browser: none is fetched here."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from aiaudit.pipeline.errors import ConfigError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Quiet: no update checks, sync, metrics or other requests of the browser's own.
QUIET = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--disable-domain-reliability", "--disable-extensions", "--metrics-recording-only", "--hide-scrollbars")


def chromium() -> str:
    """The browser's path. Raises ConfigError saying how to install one."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise ConfigError("no Chromium on this machine: install Debian's `chromium` package (apt-get install chromium) "
                      "to print a report to PDF; the HTML report needs no browser")


def run(page: Path, *flags: str, timeout_s: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Chromium on a local file, headless, with its own throwaway profile. Raises ConfigError when it fails."""
    with tempfile.TemporaryDirectory(prefix="aiaudit-chromium-") as profile:
        try:
            done = subprocess.run([chromium(), *QUIET, f"--user-data-dir={profile}", *flags, page.resolve().as_uri()],
                                  capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"Chromium did not finish with {page} within {timeout_s:.0f}s") from exc
    if done.returncode != 0:
        raise ConfigError(f"Chromium failed on {page} (exit {done.returncode}): {done.stderr.decode(errors='replace')[-300:]}")
    return done


def print_pdf(page: Path, pdf: Path) -> None:
    run(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    if not pdf.exists() or pdf.stat().st_size == 0:
        raise ConfigError(f"Chromium wrote no PDF for {page}")


def screenshot(page: Path, png: Path, *, width: int = 1200, height: int = 3000) -> None:
    run(page, f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.exists():
        raise ConfigError(f"Chromium wrote no screenshot of {page}")


def dom(page: Path, *flags: str) -> str:
    """The page's DOM after it loaded, as the browser serialises it."""
    return run(page, "--dump-dom", *flags).stdout.decode("utf-8", "replace")
