//! Integration tests of keyhole-report: golden Markdown and JSON, the HTML page in headless
//! Chromium, SARIF against the official schema, and hostile strings from the target.

mod html;
mod sarif;
mod snapshots;
mod support;
