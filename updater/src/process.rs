//! Running an outside program with a time limit: in a process group of its own, so that the whole
//! group can be ended when the program ends or runs out of time and nothing it started outlives it.
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How a bounded run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(ExitStatus),
    /// The time limit passed; the group was killed.
    TimedOut,
}

/// Which of the program's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// A line longer than this is cut (the rest is dropped): a program cannot make the updater hold
/// an unbounded line.
pub const MAX_LINE: usize = 4096;

const POLL: Duration = Duration::from_millis(20);
/// After the program ended, how long its output may still take to arrive.
const DRAIN: Duration = Duration::from_secs(1);

/// Runs a short system tool (mount, mkfs, cp) to its end. A failure says which program failed, how,
/// and the last line it wrote to standard error, which is where these tools say why.
pub fn run_tool(command: &mut Command) -> io::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {program}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let why = said.lines().map(str::trim).rfind(|l| !l.is_empty());
    Err(io::Error::other(match why {
        Some(why) => format!("{program}: {why} ({})", output.status),
        None => format!("{program}: {}", output.status),
    }))
}

/// Runs `command` with standard input closed and standard output and error left as they are.
pub fn run(command: &mut Command, timeout: Duration) -> io::Result<Ended> {
    let child = command.stdin(Stdio::null()).process_group(0).spawn()?;
    supervise(child, timeout, None)
}

/// Runs `command` with standard input closed, handing every line it prints to `line` as it comes.
pub fn run_with_output(
    command: &mut Command,
    timeout: Duration,
    line: &mut dyn FnMut(Output, &str),
) -> io::Result<Ended> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let (tx, rx) = mpsc::channel();
    // Detached: a reader ends when the last process holding its pipe does.
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || read_lines(out, Output::Stdout, &tx));
    }
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || read_lines(err, Output::Stderr, &tx));
    }
    supervise(child, timeout, Some((&rx, line)))
}

type Lines<'a> = (
    &'a mpsc::Receiver<(Output, String)>,
    &'a mut dyn FnMut(Output, &str),
);

fn supervise(
    mut child: std::process::Child,
    timeout: Duration,
    mut lines: Option<Lines<'_>>,
) -> io::Result<Ended> {
    let group = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        match child.try_wait() {
            Err(e) => break Err(e),
            Ok(Some(status)) => break Ok(Ended::Exited(status)),
            Ok(None) if Instant::now() >= deadline => break Ok(Ended::TimedOut),
            Ok(None) => match &mut lines {
                Some((rx, line)) => match rx.recv_timeout(POLL) {
                    Ok((from, text)) => line(from, &text),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // Both outputs closed; the program may still run.
                    Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
                },
                None => std::thread::sleep(POLL),
            },
        }
    };
    // ESRCH (nothing left in the group) is the usual answer.
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
    if let Some((rx, line)) = lines {
        let until = Instant::now() + DRAIN;
        while let Ok((from, text)) =
            rx.recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            line(from, &text);
        }
    }
    outcome
}

fn read_lines(from: impl Read, output: Output, tx: &mpsc::Sender<(Output, String)>) {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        let (ended, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(buf) => {
                let end = buf.iter().position(|&b| b == b'\n');
                let part = &buf[..end.unwrap_or(buf.len())];
                let room = MAX_LINE.saturating_sub(line.len());
                line.extend_from_slice(&part[..part.len().min(room)]);
                (end.is_some(), end.map_or(buf.len(), |i| i + 1))
            }
        };
        reader.consume(used);
        if ended {
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            if tx.send((output, text)).is_err() {
                return;
            }
        }
    }
    if !line.is_empty() {
        let _ = tx.send((output, String::from_utf8_lossy(&line).into_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_tool_is_named_with_its_last_line_of_stderr() {
        let mut fails = Command::new("sh");
        fails.args([
            "-c",
            "echo first >&2; echo 'the reason' >&2; echo >&2; exit 3",
        ]);
        assert_eq!(
            run_tool(&mut fails).unwrap_err().to_string(),
            "sh: the reason (exit status: 3)"
        );
        let mut silent = Command::new("false");
        assert_eq!(
            run_tool(&mut silent).unwrap_err().to_string(),
            "false: exit status: 1"
        );
        let mut missing = Command::new("no-such-tool-here");
        let err = run_tool(&mut missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().starts_with("running no-such-tool-here: "),
            "{err}"
        );
        run_tool(Command::new("true").arg("x")).unwrap();
    }

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn lines_of_both_outputs_arrive_in_full_and_long_ones_are_cut() {
        let mut got = Vec::new();
        let ended = run_with_output(
            &mut sh("echo one; echo two >&2; printf 'no newline'; head -c 10000 /dev/zero | tr '\\0' x >&2; exit 3"),
            Duration::from_secs(10),
            &mut |from, text| got.push((from, text.to_string())),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Exited(s) if s.code() == Some(3)));
        let stdout: Vec<_> = got.iter().filter(|(f, _)| *f == Output::Stdout).collect();
        assert_eq!(stdout.len(), 2, "{got:?}");
        assert_eq!(stdout[0].1, "one");
        assert_eq!(stdout[1].1, "no newline");
        let stderr: Vec<_> = got.iter().filter(|(f, _)| *f == Output::Stderr).collect();
        assert_eq!(stderr[0].1, "two");
        assert_eq!(stderr[1].1.len(), MAX_LINE);
    }

    #[test]
    fn a_program_past_its_time_is_killed_with_what_it_started() {
        let started = Instant::now();
        let mut got = Vec::new();
        let ended = run_with_output(
            &mut sh("echo started; sleep 30 & sleep 30"),
            Duration::from_millis(300),
            &mut |_, text| got.push(text.to_string()),
        )
        .unwrap();
        assert_eq!(ended, Ended::TimedOut);
        assert_eq!(got, ["started"]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
