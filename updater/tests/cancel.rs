//! Cancel and activation are one decision: whenever a cancel comes, an acknowledged cancel means
//! the group was not activated, and a refused one means it was.
mod common;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::device::Device;
use updater::cancel::CancelToken;
use updater::install::{install, InstallOptions};
use updater::progress::{Progress, Step, Style, Tick};
use updater::{Config, UpdaterError};

#[test]
fn defect_08_an_acknowledged_cancel_never_activates_the_group() {
    let mut acknowledged = 0;
    let mut refused = 0;
    for round in 0..40u64 {
        let device = Device::new();
        let (bundle, _) = device.bundle("1.1.0");
        let config = Config::load(&device.path("system.toml")).unwrap();
        let token = Arc::new(CancelToken::default());
        // Cancels land around the end of the read-back, where the install decides to activate.
        let read_back_done = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&read_back_done);
        let in_step = Arc::clone(&token);
        let progress = Progress::observed(
            Style::Quiet,
            Arc::new(move |tick: &Tick| {
                if tick.step == Step::ReadBack && tick.done == tick.total {
                    // Every fourth round cancels at the last moment the install reports.
                    if round % 4 == 0 {
                        in_step.cancel();
                    }
                    done.store(true, Ordering::SeqCst);
                }
            }),
        );
        let canceller = {
            let token = Arc::clone(&token);
            thread::spawn(move || {
                while !read_back_done.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
                thread::sleep(Duration::from_micros(round * 20));
                token.cancel()
            })
        };
        let options = InstallOptions {
            cancel: Some(Arc::clone(&token)),
            ..Default::default()
        };
        let result = install(&config, File::open(&bundle).unwrap(), &options, &progress);
        let acked = canceller.join().unwrap();
        let next = device.status()["next"].as_str().unwrap().to_string();
        if acked {
            acknowledged += 1;
            assert!(
                matches!(result, Err(UpdaterError::Cancelled(_))),
                "round {round}: cancel acknowledged, install returned {result:?}"
            );
            assert_eq!(next, "A", "round {round}: acknowledged cancel, B activated");
        } else {
            refused += 1;
            assert!(result.is_ok(), "round {round}: {result:?}");
            assert_eq!(next, "B", "round {round}");
        }
    }
    println!("{acknowledged} cancels acknowledged, {refused} refused as too late");
    assert!(acknowledged > 0, "no cancel landed before the decision");
}
