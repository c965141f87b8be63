//! Progress of long steps: a bar redrawn in place on a terminal, plain lines every 10 % otherwise
//! (logs, serial consoles, CI), nothing when quiet.
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

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

/// Told the step's name, bytes done and bytes in total at every change (the local API's status).
pub type Observer = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

pub struct Progress {
    style: Style,
    inner: Mutex<Step>,
    observer: Option<Observer>,
}

#[derive(Default)]
struct Step {
    name: String,
    total: u64,
    done: u64,
    shown: Option<u64>,
}

impl Progress {
    pub fn new(style: Style) -> Self {
        Progress {
            style,
            inner: Mutex::new(Step::default()),
            observer: None,
        }
    }

    pub fn observed(style: Style, observer: Observer) -> Self {
        Progress {
            observer: Some(observer),
            ..Progress::new(style)
        }
    }

    pub fn begin(&self, name: &str, total: u64) {
        let mut step = self.inner.lock().expect("progress lock");
        *step = Step {
            name: name.into(),
            total,
            done: 0,
            shown: None,
        };
        self.show(&mut step);
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

    fn show(&self, step: &mut Step) {
        if let Some(observer) = &self.observer {
            observer(&step.name, step.done, step.total);
        }
        let percent = (step.done * 100).checked_div(step.total).unwrap_or(100);
        let due = match self.style {
            Style::Quiet => false,
            Style::Bar => step.shown != Some(percent),
            Style::Lines => step.shown.map_or(true, |shown| percent / 10 > shown / 10),
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
                step.name,
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
                step.name,
                mib(step.done),
                mib(step.total)
            );
        }
        let _ = err.flush();
    }
}
