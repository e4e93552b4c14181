//! The Markdown report. Every string that comes from the HDF or the cluster is escaped with
//! [`text`]: the target's data is attacker-controlled, and Markdown renderers turn `[x](url)`,
//! `![x](url)` and raw HTML into links, remote images (a tracking beacon) and markup.

use std::fmt::Write as _;

use crate::report::{ControlView, FindingsView, Outcome, Report};

/// Inline text with every ASCII punctuation character backslash-escaped (CommonMark lets any
/// of them be escaped, so nothing can open a link, an image, emphasis, code, a table cell or an
/// HTML tag) and line breaks and other control characters turned into spaces, so a value cannot
/// end its table row or list item.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// A value of letters, digits and `-:.+/` only (timestamps, run ids, Kubernetes names, NIST
/// tags, versions) as it is: none of those can start markup inside a line (callers never put
/// one at the start of a line), and escaping them would make `2026\-11\-26T13\:00\:05Z` of
/// every time. Anything else, and anything GitHub would autolink (`://`, `www.`), is escaped
/// with [`text`].
fn token(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-:.+/".contains(c));
    if plain && !s.contains("://") && !s.to_ascii_lowercase().contains("www.") {
        s.to_owned()
    } else {
        text(s)
    }
}

fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "—".to_owned(), text)
}

fn percent(p: Option<u32>) -> String {
    p.map_or_else(|| "—".to_owned(), |p| format!("{p}%"))
}

/// Renders `report` as Markdown (CommonMark with GitHub tables).
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    // `write!` to a String cannot fail.
    let mut w = |s: String| out.push_str(&s);

    w("# Keyhole scan report\n\n".to_owned());
    w("| | |\n|---|---|\n".to_owned());
    w(format!("| Run id | {} |\n", token(&report.run_id)));
    w(format!(
        "| Targets | {} |\n",
        if report.targets.is_empty() {
            "—".to_owned()
        } else {
            report
                .targets
                .iter()
                .map(|t| token(t))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    w(format!("| Mode | {} |\n", token(&report.mode)));
    w(format!(
        "| Profile | {}{} |\n",
        token(&report.profile),
        report
            .profile_version
            .as_deref()
            .map_or_else(String::new, |v| format!(" {}", token(v)))
    ));
    w(format!("| Started | {} |\n", token(&report.started_at)));
    w(format!("| Finished | {} |\n", token(&report.finished_at)));
    w(format!("| Keyhole | {} |\n\n", token(&report.tool_version)));

    w("## Verdict\n\n".to_owned());
    let v = &report.verdict;
    let t = report.totals();
    w(format!("**{}**", v.outcome.label()));
    match v.outcome {
        Outcome::Passed => w(format!(
            ": the threshold {} is met.\n\n",
            opt(v.threshold.as_deref())
        )),
        Outcome::Failed => w(format!(
            ": the threshold {} is not met.\n\n",
            opt(v.threshold.as_deref())
        )),
        Outcome::NotJudged => w(": no threshold was given, so nothing was judged.\n\n".to_owned()),
        Outcome::Aborted => w(format!(
            ": the pre-scan verification aborted the scan: {}\n\n",
            opt(v.aborted.as_deref())
        )),
    }
    for violation in &v.violations {
        w(format!(
            "- {}: {}\n",
            token(&violation.check),
            text(&violation.message)
        ));
    }
    if !v.violations.is_empty() {
        w("\n".to_owned());
    }
    w(format!(
        "Compliance **{}%**: {} passed, {} failed, {} not reviewed, {} profile errors, {} not applicable.\n\n",
        report.compliance, t.passed, t.failed, t.skipped, t.error, t.no_impact
    ));

    w("## Compliance by severity\n\n".to_owned());
    w("| Severity | Passed | Failed | Not reviewed | Profile error | Not applicable | Compliance |\n".to_owned());
    w("|---|---:|---:|---:|---:|---:|---:|\n".to_owned());
    for row in &report.severities {
        w(format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            token(&row.severity),
            row.passed,
            row.failed,
            row.skipped,
            row.error,
            row.no_impact,
            percent(row.compliance)
        ));
    }
    w("\n".to_owned());

    let failed: Vec<&ControlView> = report.failed_controls().collect();
    w(format!("## Failed controls ({})\n\n", failed.len()));
    if failed.is_empty() {
        w("None.\n\n".to_owned());
    }
    for c in failed {
        w(control(c));
    }
    let errors: Vec<&ControlView> = report.error_controls().collect();
    if !errors.is_empty() {
        w(format!(
            "## Controls with profile errors ({})\n\n",
            errors.len()
        ));
        for c in errors {
            w(control(c));
        }
    }

    w("## Pre-scan verification\n\n".to_owned());
    w(findings(report.precheck.as_ref()));
    w("## Post-scan audit\n\n".to_owned());
    w(findings(report.postscan.as_ref()));

    w("## Objects created and deleted\n\n".to_owned());
    if report.objects.is_empty() {
        w("None.\n\n".to_owned());
    } else {
        w("| Kind | Namespace | Name | Created | Deleted |\n|---|---|---|---|---|\n".to_owned());
        for o in &report.objects {
            w(format!(
                "| {} | {} | {} | {} | {} |\n",
                token(&o.kind),
                token(&o.namespace),
                token(&o.name),
                token(&o.created_at),
                o.deleted_at
                    .as_deref()
                    .map_or_else(|| "**NOT DELETED**".to_owned(), token)
            ));
        }
        w("\n".to_owned());
        let leftover = report.leftover_objects().count();
        if leftover > 0 {
            w(format!(
                "**{leftover} object(s) were not confirmed deleted**; `keyhole reap` removes them.\n\n"
            ));
        }
    }

    w("## Token lifetime\n\n".to_owned());
    match &report.token {
        None => w("No token was issued.\n".to_owned()),
        Some(t) => {
            w("| Issued | Expires | Revoked |\n|---|---|---|\n".to_owned());
            w(format!(
                "| {} | {} | {} |\n",
                token(&t.issued_at),
                token(&t.expires_at),
                t.revoked_at.as_deref().map_or_else(
                    || "**NOT REVOKED** (valid until it expires)".to_owned(),
                    token
                )
            ));
        }
    }
    out
}

fn control(c: &ControlView) -> String {
    let mut s = String::new();
    let _ = write!(s, "### {}", text(&c.id));
    if let Some(title) = &c.title {
        let _ = write!(s, ": {}", text(title));
    }
    let _ = write!(
        s,
        "\n\n- Severity: {} (impact {})\n",
        text(&c.severity),
        c.impact
    );
    if !c.nist.is_empty() {
        let nist: Vec<String> = c.nist.iter().map(|n| token(n)).collect();
        let _ = writeln!(s, "- NIST: {}", nist.join(", "));
    }
    if c.evidence.is_empty() {
        s.push_str("- Evidence: none recorded\n");
    } else {
        s.push_str("- Evidence:\n");
        for e in &c.evidence {
            let _ = write!(s, "  - {}: {}", text(&e.status), text(&e.code_desc));
            if let Some(m) = &e.message {
                let _ = write!(s, ": {}", text(m));
            }
            s.push('\n');
        }
    }
    s.push('\n');
    s
}

fn findings(f: Option<&FindingsView>) -> String {
    let Some(f) = f else {
        return "Not run.\n\n".to_owned();
    };
    let mut s = format!(
        "{}: {} passed, {} problem(s).\n\n",
        token(&f.profile),
        f.passed,
        f.problems
    );
    if f.checks.is_empty() {
        return s;
    }
    s.push_str("| Check | Status | Severity | Evidence |\n|---|---|---|---|\n");
    for c in &f.checks {
        let evidence: Vec<String> = c
            .evidence
            .iter()
            .map(|e| match &e.message {
                Some(m) => format!("{}: {}", text(&e.code_desc), text(m)),
                None => text(&e.code_desc),
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            text(c.name()),
            text(&c.status),
            text(&c.severity),
            if evidence.is_empty() {
                "—".to_owned()
            } else {
                evidence.join("; ")
            }
        );
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::{text, token};

    #[test]
    fn text_neutralises_markdown_and_html() {
        assert_eq!(
            text("[x](http://e/) ![i](http://e/p.png) <b>|`*_\nnext"),
            "\\[x\\]\\(http\\:\\/\\/e\\/\\) \\!\\[i\\]\\(http\\:\\/\\/e\\/p\\.png\\) \\<b\\>\\|\\`\\*\\_ next"
        );
        assert_eq!(text("plain words 42 é"), "plain words 42 é");
        assert_eq!(token("2026-11-26T13:00:05Z"), "2026-11-26T13:00:05Z");
        assert_eq!(token("a[b](c)"), "a\\[b\\]\\(c\\)");
        assert_eq!(token("http://e.x/y"), "http\\:\\/\\/e\\.x\\/y");
        assert_eq!(token("WWW.e.x"), "WWW\\.e\\.x");
    }
}
