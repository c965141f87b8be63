//! Progress of long steps: a bar redrawn in place on a terminal, plain lines every 10 % otherwise
//! (logs, serial consoles, CI), nothing when quiet.
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use crate::names::named;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bar,
    Lines,
    Quiet,
}

impl Style {
    pub fn for_stderr() -> Style {
        if std::io::stderr().is_terminal() {
            Style::Bar
        } else {
            Style::Lines
        }
    }
}

named! {
    /// The long steps that report progress.
    #[derive(Default)]
    pub enum Step {
        /// Writing a bundle's images (and verifying each chunk) into the target group.
        #[default]
        Install = "install",
        /// Reading back, after the fsync, what was written and not yet read back.
        ReadBack = "read-back",
        /// Writing firmware to a microcontroller.
        Firmware = "firmware",
    }
}

/// Told of every change (the local API's status, the C library's callback).
pub type Observer = Arc<dyn Fn(&Tick) + Send + Sync>;

/// Where a long job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick<'a> {
    pub step: Step,
    pub done: u64,
    pub total: u64,
    /// What is being worked on, once known: the version of the bundle being installed.
    pub subject: Option<&'a str>,
}

impl Tick<'_> {
    /// Done in percent; None while the total is not known.
    pub fn percent(&self) -> Option<u64> {
        (self.done * 100).checked_div(self.total)
    }
}

pub struct Progress {
    style: Style,
    inner: Mutex<Current>,
    subject: Mutex<Option<String>>,
    observer: Option<Observer>,
}

#[derive(Default)]
struct Current {
    step: Step,
    total: u64,
    done: u64,
    shown: Option<u64>,
}

impl Progress {
    pub fn new(style: Style) -> Self {
        Progress {
            style,
            inner: Mutex::new(Current::default()),
            subject: Mutex::new(None),
            observer: None,
        }
    }

    pub fn observed(style: Style, observer: Observer) -> Self {
        Progress {
            observer: Some(observer),
            ..Progress::new(style)
        }
    }

    /// Names what the following steps work on (shown to the observer, not on the terminal).
    pub fn set_subject(&self, subject: &str) {
        *self.subject.lock().expect("progress lock") = Some(subject.to_string());
    }

    pub fn begin(&self, step: Step, total: u64) {
        let mut current = self.inner.lock().expect("progress lock");
        *current = Current {
            step,
            total,
            done: 0,
            shown: None,
        };
        self.show(&mut current);
    }

    pub fn advance(&self, bytes: u64) {
        let mut step = self.inner.lock().expect("progress lock");
        step.done = (step.done + bytes).min(step.total);
        self.show(&mut step);
    }

    pub fn end(&self) {
        let step = self.inner.lock().expect("progress lock");
        if self.style == Style::Bar && step.shown.is_some() {
            eprintln!();
        }
    }

    fn show(&self, step: &mut Current) {
        if let Some(observer) = &self.observer {
            let subject = self.subject.lock().expect("progress lock");
            observer(&Tick {
                step: step.step,
                done: step.done,
                total: step.total,
                subject: subject.as_deref(),
            });
        }
        let percent = (step.done * 100).checked_div(step.total).unwrap_or(100);
        let due = match self.style {
            Style::Quiet => false,
            Style::Bar => step.shown != Some(percent),
            Style::Lines => step.shown.is_none_or(|shown| percent / 10 > shown / 10),
        };
        if !due {
            return;
        }
        step.shown = Some(percent);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut err = std::io::stderr().lock();
        if self.style == Style::Bar {
            let filled = (percent / 5) as usize;
            let _ = write!(
                err,
                "\r{:<10} [{}{}] {:>3}% {:.1}/{:.1} MiB",
                step.step.as_str(),
                "#".repeat(filled),
                ".".repeat(20 - filled),
                percent,
                mib(step.done),
                mib(step.total)
            );
        } else {
            let _ = writeln!(
                err,
                "{}: {percent}% ({:.1} of {:.1} MiB)",
                step.step,
                mib(step.done),
                mib(step.total)
            );
        }
        let _ = err.flush();
    }
}
