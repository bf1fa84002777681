//! How a run shows itself as it goes, chosen by where it runs:
//!
//! - in CI ([`in_ci`]): plain timestamped lines inside GitLab collapsible sections, one per
//!   stage and one per phase of it (lock, pre-checks, migrations, rollout, bake, rollback);
//! - on a terminal: the same lines, plus a live line at the bottom that says what is running
//!   now, with a bar counting through the bake;
//! - anywhere else (a pipe, a file): the plain lines only.
//!
//! Every display is a [`Reporter`]; none of them decides anything.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::lifecycle::ports::{CheckOutcome, CheckResult, Phase, Reporter, StageEnd, bake_label};
use crate::terminal;

/// Whether tagship runs in CI: `CI` is `true`/`1`, or GitLab's `GITLAB_CI` is set.
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var_os("GITLAB_CI").is_some()
}

/// The display for this process: CI sections, a terminal's live line, or plain lines.
#[must_use]
pub fn display() -> Box<dyn Reporter + Send + Sync> {
    if in_ci() {
        Box::new(CiSections::default())
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Box::new(Terminal::new())
    } else {
        Box::new(Lines)
    }
}

/// `HH:MM:SS [stage] message`.
fn line(stage: Option<&str>, message: &str) -> String {
    let now = crate::context::now_rfc3339();
    let time = now.get(11..19).unwrap_or("");
    match stage {
        Some(stage) => format!("{time} [{stage}] {message}"),
        None => format!("{time} {message}"),
    }
}

/// Plain lines on stderr.
#[derive(Debug, Default, Clone, Copy)]
pub struct Lines;

impl Reporter for Lines {
    fn step(&self, stage: Option<&str>, message: &str) {
        terminal::stderr_line(&line(stage, message));
    }
}

/// GitLab CI collapsible sections around each stage and each phase of it.
#[derive(Debug, Default)]
pub struct CiSections {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    stage: Option<String>,
    phase: Option<String>,
}

/// A section name GitLab accepts (`[a-z0-9_.-]`), unique per stage and phase.
fn section_name(parts: &[&str]) -> String {
    let joined = parts.join("_");
    let clean: String = joined
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("tagship_{clean}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The marker GitLab turns into the start of a collapsible section.
#[must_use]
pub fn section_start(name: &str, header: &str) -> String {
    format!(
        "\x1b[0Ksection_start:{}:{name}\r\x1b[0K{header}",
        unix_now()
    )
}

/// The marker that ends section `name`.
#[must_use]
pub fn section_end(name: &str) -> String {
    format!("\x1b[0Ksection_end:{}:{name}\r\x1b[0K", unix_now())
}

impl CiSections {
    fn close_phase(open: &mut Open) {
        if let Some(name) = open.phase.take() {
            terminal::stderr_line(&section_end(&name));
        }
    }

    fn close_stage(open: &mut Open) {
        Self::close_phase(open);
        if let Some(stage) = open.stage.take() {
            terminal::stderr_line(&section_end(&section_name(&[&stage])));
        }
    }

    fn enter_stage(open: &mut Open, stage: &str) {
        if open.stage.as_deref() != Some(stage) {
            Self::close_stage(open);
            terminal::stderr_line(&section_start(
                &section_name(&[stage]),
                &format!("stage {stage}"),
            ));
            open.stage = Some(stage.to_owned());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Reporter for CiSections {
    fn step(&self, stage: Option<&str>, message: &str) {
        let mut open = self.lock();
        if let Some(stage) = stage {
            Self::enter_stage(&mut open, stage);
        }
        terminal::stderr_line(&line(stage, message));
    }

    fn phase(&self, stage: &str, phase: Phase) {
        let mut open = self.lock();
        Self::enter_stage(&mut open, stage);
        Self::close_phase(&mut open);
        let name = section_name(&[stage, phase.name()]);
        terminal::stderr_line(&section_start(&name, &format!("{stage}: {}", phase.name())));
        open.phase = Some(name);
    }

    fn stage_done(&self, _stage: &str, _end: StageEnd) {
        Self::close_stage(&mut self.lock());
    }
}

impl Drop for CiSections {
    fn drop(&mut self) {
        Self::close_stage(&mut self.lock());
    }
}

/// A terminal: the lines, and a live line at the bottom saying what runs now.
#[derive(Debug)]
pub struct Terminal {
    bar: ProgressBar,
    stage: Mutex<Option<String>>,
}

impl Terminal {
    /// A live line on stderr.
    #[must_use]
    pub fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(spinner_style());
        bar.enable_steady_tick(Duration::from_millis(120));
        Terminal {
            bar,
            stage: Mutex::new(None),
        }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix}{wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bake_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix}bake {bar:30} {pos}/{len}s {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Reporter for Terminal {
    fn step(&self, stage: Option<&str>, message: &str) {
        self.bar.println(line(stage, message));
        if self.bar.length().is_none() {
            self.bar.set_message(message.to_owned());
        }
    }

    fn phase(&self, stage: &str, phase: Phase) {
        *self
            .stage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stage.to_owned());
        self.bar.set_prefix(format!("[{stage}] "));
        self.bar.reset_elapsed();
        if let Phase::Bake { duration } = phase {
            // A bar through the bake, moved by a clock (checks report at their own pace).
            self.bar.set_style(bake_style());
            self.bar.set_length(duration.as_secs().max(1));
            self.bar.set_position(0);
            self.bar.set_message("");
            let bar = self.bar.clone();
            let started = Instant::now();
            std::thread::spawn(move || {
                while bar.length().is_some() && !bar.is_finished() {
                    let len = bar.length().unwrap_or(0);
                    bar.set_position(started.elapsed().as_secs().min(len));
                    if bar.position() >= len {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        } else {
            self.bar.unset_length();
            self.bar.set_style(spinner_style());
            self.bar.set_message(phase.name());
        }
    }

    fn checked(&self, _stage: &str, phase: Phase, at: Option<Duration>, results: &[CheckResult]) {
        if self.bar.length().is_some() {
            let summary: Vec<String> = results
                .iter()
                .map(|r| {
                    let word = match &r.outcome {
                        CheckOutcome::Pass => "pass",
                        CheckOutcome::Fail(_) => "FAIL",
                        CheckOutcome::Unknown(_) => "unknown",
                        CheckOutcome::Errored(_) => "error",
                    };
                    match &r.cluster {
                        Some(cluster) => format!("{}@{cluster} {word}", r.check),
                        None => format!("{} {word}", r.check),
                    }
                })
                .collect();
            // The bar counts from the bake's phase, as the round's label does.
            let when = match (phase, at) {
                (Phase::Bake { duration }, Some(at)) => format!(" ({})", bake_label(at, duration)),
                _ => String::new(),
            };
            self.bar
                .set_message(format!("last{when}: {}", summary.join(", ")));
        }
    }

    fn stage_done(&self, _stage: &str, _end: StageEnd) {
        self.bar.unset_length();
        self.bar.set_style(spinner_style());
        self.bar.set_prefix("");
        self.bar.set_message("");
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl<R: Reporter + ?Sized> Reporter for Box<R> {
    fn step(&self, stage: Option<&str>, message: &str) {
        (**self).step(stage, message);
    }
    fn phase(&self, stage: &str, phase: Phase) {
        (**self).phase(stage, phase);
    }
    fn checked(&self, stage: &str, phase: Phase, at: Option<Duration>, results: &[CheckResult]) {
        (**self).checked(stage, phase, at, results);
    }
    fn stage_done(&self, stage: &str, end: StageEnd) {
        (**self).stage_done(stage, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names_are_what_gitlab_accepts() {
        assert_eq!(
            section_name(&["gstg-cny", "pre-deployment migrations"]),
            "tagship_gstg-cny_pre-deployment_migrations"
        );
        let start = section_start("tagship_gprd", "stage gprd");
        assert!(start.starts_with("\x1b[0Ksection_start:"), "{start:?}");
        assert!(
            start.ends_with(":tagship_gprd\r\x1b[0Kstage gprd"),
            "{start:?}"
        );
        let end = section_end("tagship_gprd");
        assert!(end.ends_with(":tagship_gprd\r\x1b[0K"), "{end:?}");
    }
}
