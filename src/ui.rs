//! What people see on stderr: headings, step lines, warnings and progress bars.
//!
//! Data for programs goes to stdout elsewhere; everything here is for a person and goes to
//! stderr, so `aimem backup > path.txt` captures only the backup's path.
//!
//! Every method escapes the control characters in its text ([`crate::terminal::escape`]):
//! what it prints is built from names, manifest fields and the server's words.

use std::time::Duration;

use console::{Term, style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::terminal::escape;

/// Width of the `====` rules, as in the Python scripts' output.
const RULE_WIDTH: usize = 60;

/// The person-facing printer.
#[derive(Debug, Clone)]
pub struct Ui {
    quiet: bool,
    progress: bool,
    term: Term,
}

impl Ui {
    /// `quiet` prints only warnings and errors; `progress` allows bars (only on a terminal).
    pub fn new(quiet: bool, progress: bool) -> Ui {
        let term = Term::stderr();
        let progress = progress && !quiet && term.is_term();
        Ui {
            quiet,
            progress,
            term,
        }
    }

    fn print(&self, line: &str) {
        if !self.quiet {
            let _ = self.term.write_line(line);
        }
    }

    /// A boxed title: rule, title, rule.
    pub fn header(&self, title: &str) {
        self.rule();
        self.print(&format!("  {}", style(escape(title)).bold()));
        self.rule();
        self.print("");
    }

    pub fn rule(&self) {
        self.print(&"=".repeat(RULE_WIDTH));
    }

    pub fn blank(&self) {
        self.print("");
    }

    /// `  key: value` facts under a heading.
    pub fn fact(&self, key: &str, value: &str) {
        self.print(&format!("  {}: {}", escape(key), escape(value)));
    }

    /// A step in progress: `  Backing up discussions...`.
    pub fn step(&self, text: &str) {
        self.print(&format!("  {}", escape(text)));
    }

    /// A finished sub-step: `    ✓ …`.
    pub fn ok(&self, text: &str) {
        self.print(&format!("    {} {}", style("✓").green(), escape(text)));
    }

    /// A neutral remark: `    - …`.
    pub fn note(&self, text: &str) {
        self.print(&format!("    {} {}", style("-").dim(), escape(text)));
    }

    /// Printed even with `--quiet`: something the user should know.
    pub fn warn(&self, text: &str) {
        let _ = self.term.write_line(&format!(
            "    {} {}",
            style("⚠").yellow(),
            style(escape(text)).yellow()
        ));
    }

    /// A closing line with a check mark: `  ✓ Backup complete: …`.
    pub fn success(&self, text: &str) {
        self.print(&format!(
            "  {} {}",
            style("✓").green().bold(),
            style(escape(text)).bold()
        ));
    }

    /// A byte-count bar for a transfer; hidden when not on a terminal.
    pub fn transfer_bar(&self, total: Option<u64>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = "      {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// `1.2 MB`: binary multiples with the short names people expect (as the Python scripts print).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_the_guide() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(524_288), "512.0 KB");
        assert_eq!(human_size(1_258_291), "1.2 MB");
        assert_eq!(human_size(53_901_000_000), "50.2 GB");
    }
}
