//! The HTML page, rendered by headless Chromium (Debian `chromium`): it shows the numbers, it
//! needs nothing from outside, and hostile strings from the target stay inert text.

use std::path::{Path, PathBuf};
use std::process::Command;

use keyhole_report::Report;

use crate::support::{HOSTILE_EVIDENCE, HOSTILE_TITLE, hostile_exec, sample_exec, summary};

/// The Chromium executable: `$KEYHOLE_CHROMIUM`, else the first of `chromium`,
/// `chromium-browser`, `google-chrome`, `google-chrome-stable` on the `PATH` (Ubuntu runners
/// ship Google Chrome, which takes the same flags). Panics, saying how to install it, when
/// there is none: this test must not pass without running.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("KEYHOLE_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "headless Chromium is needed to check the HTML report and was not found on the PATH: \
         install Debian's `chromium` (`apt-get install --no-install-recommends chromium`; \
         `cargo xtask ci` installs it with the other test packages) or set KEYHOLE_CHROMIUM to \
         the browser's executable"
    );
}

/// Writes `html` to a file and returns the DOM Chromium builds from it (scripts enabled, as a
/// reader's browser would have them).
fn rendered_dom(name: &str, html: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-html-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let browser = chromium();
    // `timeout` bounds a browser that hangs; --no-sandbox because the tests run as root in CI.
    let out = Command::new("timeout")
        .arg("120")
        .arg(&browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", browser.display()));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "{} --dump-dom failed ({}): {}",
        browser.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The text of the element with `id`, from Chromium's serialised DOM.
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\">");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no element #{id} in the rendered page:\n{dom}"))
        + marker.len();
    let end = start + dom[start..].find('<').expect("element closes");
    &dom[start..end]
}

#[test]
fn chromium_renders_the_numbers() {
    let html = Report::build(&sample_exec(), &summary())
        .unwrap()
        .to_html()
        .unwrap();
    let dom = rendered_dom("numbers", &html);
    // Worked out by hand from sample-exec.json (see snapshots.rs).
    assert_eq!(text_of(&dom, "verdict"), "FAILED");
    assert_eq!(text_of(&dom, "compliance"), "40%");
    assert_eq!(text_of(&dom, "count-passed"), "2");
    assert_eq!(text_of(&dom, "count-failed"), "1");
    assert_eq!(text_of(&dom, "count-skipped"), "1");
    assert_eq!(text_of(&dom, "count-error"), "1");
    assert_eq!(text_of(&dom, "count-no-impact"), "1");
    assert_eq!(text_of(&dom, "run-id"), "kx7q2m9d4a");
    // The severity table: the critical row has 1 passed, 1 error, 50%.
    let critical = &dom[dom.find("id=\"severity-critical\"").unwrap()..];
    let critical = &critical[..critical.find("</tr>").unwrap()];
    let cells: Vec<&str> = critical
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| &c[..c.find('<').unwrap()])
        .collect();
    assert_eq!(cells, ["1", "0", "0", "1", "0", "50%"]);
    assert!(dom.contains("Failed controls (1)"));
    assert!(dom.contains("expected x got y"));
}

/// A control title like `<script>alert(1)</script>` and evidence with event handlers are shown
/// as text: no element is created from them and no script runs (it would mark the body).
#[test]
fn hostile_strings_from_the_target_are_inert() {
    let html = Report::build(&hostile_exec(), &summary())
        .unwrap()
        .to_html()
        .unwrap();
    let lower = html.to_lowercase();
    for tag in ["<script", "<img", "<svg", "<iframe", "<object"] {
        assert!(!lower.contains(tag), "{tag} in the HTML:\n{html}");
    }
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );

    let dom = rendered_dom("hostile", &html);
    let lower = dom.to_lowercase();
    for tag in ["<script", "<img", "<svg"] {
        assert!(!lower.contains(tag), "{tag} in the rendered DOM:\n{dom}");
    }
    assert!(!dom.contains("data-pwned=\""), "a script ran:\n{dom}");
    // Chromium serialises the text back with entities: the title is there, as text.
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    assert!(HOSTILE_TITLE.starts_with("<script>") && HOSTILE_EVIDENCE.starts_with("<img"));
    assert!(dom.contains("&lt;img src=x onerror="), "{dom}");
}

/// Self-contained: nothing is loaded from anywhere, and the page forbids loading anything.
#[test]
fn the_page_needs_no_external_asset() {
    let html = Report::build(&sample_exec(), &summary())
        .unwrap()
        .to_html()
        .unwrap();
    for needle in [
        "src=", "href=", "url(", "@import", "<link", "<script", "http://", "https://",
    ] {
        assert!(!html.contains(needle), "{needle} in the HTML");
    }
    assert!(html.contains("<style>"));
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
}
