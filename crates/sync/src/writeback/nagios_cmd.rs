//! Write-back through the external command file of Nagios 4, Naemon, Centreon Engine and
//! openITCOCKPIT (`command_file` in nagios.cfg; usually a named pipe).
//!
//! | Action        | External command                                                  |
//! |---------------|-------------------------------------------------------------------|
//! | Acknowledge   | `ACKNOWLEDGE_SVC_PROBLEM` / `ACKNOWLEDGE_HOST_PROBLEM`            |
//! | Unacknowledge | `REMOVE_SVC_ACKNOWLEDGEMENT` / `REMOVE_HOST_ACKNOWLEDGEMENT`      |
//! | Comment       | `ADD_SVC_COMMENT` / `ADD_HOST_COMMENT`                            |
//! | Resolve       | not possible: the monitor's own checks decide that                |
//!
//! Settings: `command_file` (required), the path of the pipe (Debian's Nagios 4:
//! `/var/lib/nagios4/rw/nagios.cmd`; Naemon: `/var/lib/naemon/naemon.cmd`). pagerbridge's user
//! needs write permission on it (usually membership of the monitor's command group). A regular
//! file instead of a pipe (a spool that something else forwards) is appended to.
//!
//! Options (`options.*`):
//! - `sticky` (bool, default `false`): the acknowledgement stays through changes between
//!   problem states instead of lapsing on the first change (sent as `2`, else `1`).
//! - `notify` (bool, default `false`): the monitor sends ACKNOWLEDGEMENT notifications. Off by
//!   default because the acknowledgement was made in PagerDuty, whose responders already know,
//!   and a notification command that reports to pagerbridge would only echo it back.
//! - `persistent` (bool, default `true`): comments (the acknowledgement's too) survive a
//!   restart of the monitor.
//!
//! The external command file has no answer channel: a command for an unknown host or service
//! is only logged by the monitor, so success here means the command was delivered. Nagios has
//! no expiring acknowledgements; [`Change::expires_at`](super::Change) is not carried over.
//!
//! Author and comment lose newlines and semicolons (replaced by spaces and commas), which
//! would otherwise end the command or start another; a host or service whose name contains
//! them cannot be addressed and is a final error. Each command is written with a single
//! `write()` and kept under 4000 bytes (the comment is cut), so commands of concurrent writers
//! never interleave in the pipe.
//!
//! Errors: a missing file, a pipe without a reader (the monitor is not running) and a full
//! pipe are retried; permission problems and anything else the file refuses are final.

use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::PathBuf;
use std::sync::Arc;

use pagerbridge_model::MonitorRef;

use super::{Action, Adapter, Applied, Request, Settings, SettingsError, WriteError};

/// The longest command line written, newline included. Writes to a pipe of up to PIPE_BUF
/// (4096 on Linux) bytes are atomic; staying below leaves room for the monitor's own limits.
pub const MAX_LINE: usize = 4000;

/// The validated options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    sticky: bool,
    notify: bool,
    persistent: bool,
}

struct NagiosCmd {
    path: PathBuf,
    options: Options,
}

pub fn build(settings: &Settings) -> Result<Arc<dyn Adapter>, SettingsError> {
    let path = settings.command_file.clone().ok_or_else(|| {
        SettingsError::new(
            "command_file",
            "the monitor's external command file is required",
        )
    })?;
    if !path.is_absolute() {
        return Err(SettingsError::new(
            "command_file",
            format!("{} is not an absolute path", path.display()),
        ));
    }
    Ok(Arc::new(NagiosCmd {
        path,
        options: options(settings)?,
    }))
}

fn options(settings: &Settings) -> Result<Options, SettingsError> {
    let o = settings.options("external_command", &["sticky", "notify", "persistent"])?;
    Ok(Options {
        sticky: o.bool("sticky", false)?,
        notify: o.bool("notify", false)?,
        persistent: o.bool("persistent", true)?,
    })
}

/// Author and comment as one field of a command: no line breaks or field separators, and no
/// NUL, which would end the monitor's C string early.
fn field(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '\0')
        .map(|c| match c {
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => ' ',
            ';' => ',',
            c => c,
        })
        .collect()
}

/// `text` cut to at most `max` bytes on a character boundary, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const MORE: &str = "…";
    let mut end = max.saturating_sub(MORE.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MORE}", &text[..end])
}

/// A host or service name as the command's field; names that would break the command cannot
/// be addressed at all.
fn name(what: &str, text: &str) -> Result<String, WriteError> {
    if text.is_empty() || text.contains([';', '\n', '\r', '\0']) {
        return Err(WriteError::fail(format!(
            "the {what} name {text:?} cannot be written in an external command \
             (empty, or contains ';' or a line break)"
        )));
    }
    Ok(text.to_owned())
}

/// The command line for one change, newline included, at most [`MAX_LINE`] bytes.
fn command_line(
    target: &MonitorRef,
    action: Action,
    author: &str,
    comment: &str,
    options: Options,
    epoch: i64,
) -> Result<String, WriteError> {
    let MonitorRef::Object { host, service, .. } = target else {
        return Err(WriteError::fail(format!(
            "external_command needs a host or service to write back to, not {target:?}"
        )));
    };
    let host = name("host", host)?;
    let object = match service {
        Some(s) => format!("{host};{}", name("service", s)?),
        None => host,
    };
    let svc = if service.is_some() { "SVC" } else { "HOST" };
    let bit = |b: bool| if b { "1" } else { "0" };
    let author = cut(&field(author), 200);
    let (head, with_comment) = match action {
        Action::Acknowledge => (
            format!(
                "[{epoch}] ACKNOWLEDGE_{svc}_PROBLEM;{object};{};{};{};{author};",
                if options.sticky { "2" } else { "1" },
                bit(options.notify),
                bit(options.persistent),
            ),
            true,
        ),
        Action::Unacknowledge => (
            format!("[{epoch}] REMOVE_{svc}_ACKNOWLEDGEMENT;{object}"),
            false,
        ),
        Action::Comment => (
            format!(
                "[{epoch}] ADD_{svc}_COMMENT;{object};{};{author};",
                bit(options.persistent)
            ),
            true,
        ),
        Action::Resolve => {
            return Err(WriteError::fail(
                "external_command cannot resolve a problem: the monitor's own checks decide \
                 when it recovers (make on_resolve a comment)",
            ));
        }
    };
    // The newline takes one byte; the comment gets what is left, at least a little of it.
    let room = MAX_LINE.saturating_sub(head.len() + 1);
    if with_comment && room < 16 || head.len() + 1 > MAX_LINE {
        return Err(WriteError::fail(format!(
            "the names of {object:?} are too long for an external command"
        )));
    }
    let comment = if with_comment {
        let c = cut(&field(comment), room);
        // An empty comment makes Nagios refuse the command.
        if c.trim().is_empty() { "-".into() } else { c }
    } else {
        String::new()
    };
    Ok(format!("{head}{comment}\n"))
}

/// How long a full command pipe is waited on: the monitor reads it between checks, so a burst
/// of write-backs (or of other tools' commands) fills it only for a moment.
const PIPE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One `write()` of `bytes`; while a pipe is full (`EAGAIN`: a write of at most `PIPE_BUF`
/// bytes is all or nothing), waits for room with `poll()` and tries again, up to `wait`.
fn write_waiting(
    file: &mut std::fs::File,
    bytes: &[u8],
    wait: std::time::Duration,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.write(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(e);
                }
                let mut fd = libc::pollfd {
                    fd: file.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd for the duration of the call; the file is open.
                unsafe { libc::poll(&mut fd, 1, ms) };
            }
            other => return other,
        }
    }
}

/// Writes `line` with one `write()`. Blocking: run it off the async threads.
fn deliver(path: &std::path::Path, line: &str) -> Result<(), WriteError> {
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .append(true)
        // A pipe without a reader would block the open forever; this gives ENXIO instead.
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ENXIO) => WriteError::retry(format!(
                    "the monitor is not running: nothing reads its command pipe {shown}"
                )),
                Some(libc::ENOENT) => WriteError::retry(format!(
                    "the command file {shown} does not exist (is the monitor running, with \
                     check_external_commands=1?)"
                )),
                Some(libc::EINTR) | Some(libc::EAGAIN) => {
                    WriteError::retry(format!("cannot open the command file {shown}: {e}"))
                }
                _ => WriteError::fail(format!("cannot open the command file {shown}: {e}")),
            });
        }
    };
    let is_pipe = file.metadata().is_ok_and(|m| m.file_type().is_fifo());
    match write_waiting(&mut file, line.as_bytes(), PIPE_WAIT) {
        Ok(n) if n == line.len() => Ok(()),
        // Only a regular file can take part of it (a full disk, say); finish the line there.
        Ok(n) if !is_pipe => file
            .write_all(&line.as_bytes()[n..])
            .map_err(|e| WriteError::retry(format!("cannot write to {shown}: {e}"))),
        Ok(n) => Err(WriteError::retry(format!(
            "only {n} of {} bytes went into the command pipe {shown}",
            line.len()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(WriteError::retry(format!(
            "the monitor's command pipe {shown} stayed full for {}s (it is busy or hanging)",
            PIPE_WAIT.as_secs()
        ))),
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Err(WriteError::retry(format!(
            "the monitor stopped reading its command pipe {shown}"
        ))),
        Err(e) => Err(WriteError::fail(format!("cannot write to {shown}: {e}"))),
    }
}

#[async_trait::async_trait]
impl Adapter for NagiosCmd {
    async fn apply(&self, req: Request<'_>) -> Result<Applied, WriteError> {
        let change = req.change;
        let line = command_line(
            req.target,
            change.action,
            &change.author,
            &change.comment,
            self.options,
            jiff::Timestamp::now().as_second(),
        )?;
        let path = self.path.clone();
        let sent = line.clone();
        tokio::task::spawn_blocking(move || deliver(&path, &sent))
            .await
            .map_err(|e| {
                WriteError::retry(format!("the write to the command file failed: {e}"))
            })??;
        let shown: String = line.trim_end().chars().take(200).collect();
        let mut detail = format!("wrote to {}: {shown}", self.path.display());
        if change.action == Action::Acknowledge && change.expires_at.is_some() {
            detail.push_str(" (the monitor cannot let it expire by itself)");
        }
        Ok(Applied { memo: None, detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> MonitorRef {
        MonitorRef::Object {
            host: "db1".into(),
            service: Some("Disk /".into()),
            problem_id: None,
            last_problem_id: None,
        }
    }

    fn host() -> MonitorRef {
        MonitorRef::Object {
            host: "db1".into(),
            service: None,
            problem_id: None,
            last_problem_id: None,
        }
    }

    const DEFAULTS: Options = Options {
        sticky: false,
        notify: false,
        persistent: true,
    };

    #[test]
    fn formats_each_command() {
        let line =
            |t: &MonitorRef, a| command_line(t, a, "alice", "on it", DEFAULTS, 1700).unwrap();
        assert_eq!(
            line(&svc(), Action::Acknowledge),
            "[1700] ACKNOWLEDGE_SVC_PROBLEM;db1;Disk /;1;0;1;alice;on it\n"
        );
        assert_eq!(
            line(&host(), Action::Acknowledge),
            "[1700] ACKNOWLEDGE_HOST_PROBLEM;db1;1;0;1;alice;on it\n"
        );
        assert_eq!(
            line(&svc(), Action::Unacknowledge),
            "[1700] REMOVE_SVC_ACKNOWLEDGEMENT;db1;Disk /\n"
        );
        assert_eq!(
            line(&host(), Action::Unacknowledge),
            "[1700] REMOVE_HOST_ACKNOWLEDGEMENT;db1\n"
        );
        assert_eq!(
            line(&svc(), Action::Comment),
            "[1700] ADD_SVC_COMMENT;db1;Disk /;1;alice;on it\n"
        );
        assert_eq!(
            line(&host(), Action::Comment),
            "[1700] ADD_HOST_COMMENT;db1;1;alice;on it\n"
        );
        let sticky = Options {
            sticky: true,
            notify: true,
            persistent: false,
        };
        assert_eq!(
            command_line(&svc(), Action::Acknowledge, "a", "c", sticky, 1).unwrap(),
            "[1] ACKNOWLEDGE_SVC_PROBLEM;db1;Disk /;2;1;0;a;c\n"
        );
        assert!(
            command_line(&svc(), Action::Resolve, "a", "c", DEFAULTS, 1).is_err_and(|e| !e.retry)
        );
    }

    #[test]
    fn author_and_comment_cannot_inject_commands() {
        let line = command_line(
            &svc(),
            Action::Comment,
            "eve;\nx",
            "ok\n[1] SHUTDOWN_PROGRAM;\r\nmore;",
            DEFAULTS,
            1,
        )
        .unwrap();
        assert_eq!(
            line,
            "[1] ADD_SVC_COMMENT;db1;Disk /;1;eve, x;ok [1] SHUTDOWN_PROGRAM,  more,\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn names_that_break_commands_are_refused() {
        for (h, s) in [
            ("a;b", None),
            ("a\nb", None),
            ("a", Some("x;y")),
            ("", None),
        ] {
            let t = MonitorRef::Object {
                host: h.into(),
                service: s.map(str::to_owned),
                problem_id: None,
                last_problem_id: None,
            };
            assert!(
                command_line(&t, Action::Acknowledge, "a", "c", DEFAULTS, 1)
                    .is_err_and(|e| !e.retry),
                "{h:?} {s:?}"
            );
        }
        assert!(command_line(&MonitorRef::None, Action::Comment, "a", "c", DEFAULTS, 1).is_err());
    }

    #[test]
    fn long_comments_are_cut_on_a_char_boundary() {
        // 3-byte characters, so a cut at an arbitrary byte would split one.
        let comment = "€".repeat(5000);
        let line = command_line(&svc(), Action::Acknowledge, "a", &comment, DEFAULTS, 1).unwrap();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.len() > MAX_LINE - 8, "uses the room: {}", line.len());
        assert!(line.ends_with("€…\n"), "{:?}", &line[line.len() - 10..]);
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdefgh", 6), "abc…");
        assert_eq!(cut("ab€€", 7), "ab…");
        let host_too_long = MonitorRef::Object {
            host: "h".repeat(5000),
            service: None,
            problem_id: None,
            last_problem_id: None,
        };
        assert!(
            command_line(&host_too_long, Action::Unacknowledge, "a", "c", DEFAULTS, 1).is_err()
        );
    }

    #[test]
    fn settings_are_checked() {
        let s = Settings::default();
        assert_eq!(build(&s).err().unwrap().field, "command_file");
        let s = Settings {
            command_file: Some("rel/nagios.cmd".into()),
            ..Settings::default()
        };
        assert_eq!(build(&s).err().unwrap().field, "command_file");
        let options = |o: serde_json::Value| {
            options(&Settings {
                options: o,
                ..Settings::default()
            })
        };
        assert_eq!(options(serde_json::Value::Null).unwrap(), DEFAULTS);
        assert_eq!(
            options(serde_json::json!({"notify": 1})).unwrap_err().field,
            "options.notify"
        );
        assert_eq!(
            options(serde_json::json!({"expire": true}))
                .unwrap_err()
                .field,
            "options.expire"
        );
    }
}
