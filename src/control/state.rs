//! The state file (`--state`, Puma's): where the control app listens and
//! its token, written atomically with mode 0600, read by `catamount ctl`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Longest state file [`read_state`] reads.
pub const STATE_MAX_BYTES: u64 = 64 * 1024;

// ---------------------------------------------------------------------

/// What a state file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The server's pid (the master's in cluster mode).
    pub pid: u32,
    /// The control app's URL, if it runs one.
    pub control_url: Option<String>,
    /// The token the control app requires, if any.
    pub control_auth_token: Option<String>,
}

/// Writes the state file like Puma's (YAML):
/// `---\npid: N\ncontrol_url: URL\ncontrol_auth_token: T\n`, the last two
/// only when known. Mode 0600 (it holds the token), written to a
/// temporary file in the same directory and renamed over `path`, so a
/// reader sees the old file or the new one, never half of one.
pub fn write_state(
    path: &Path,
    pid: u32,
    control_url: Option<&str>,
    token: Option<&str>,
) -> io::Result<()> {
    let mut text = format!("---\npid: {pid}\n");
    if let Some(url) = control_url {
        let _ = writeln!(text, "control_url: {}", yaml_scalar(url));
    }
    if let Some(t) = token {
        let _ = writeln!(text, "control_auth_token: {}", yaml_scalar(t));
    }
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the state path names no file; expected a path such as /run/app/state",
        )
    })?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // Left over from a crash of a process with our pid: not ours to keep.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a state file written by [`write_state`] (or by Puma: keys it
/// does not know are skipped). The error names the file and what to do.
pub fn read_state(path: &Path) -> Result<State, String> {
    let shown = path.display();
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(STATE_MAX_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| {
            format!(
                "cannot read state file {shown}: {e}; is the server running with --state {shown}?"
            )
        })?;
    if text.len() as u64 > STATE_MAX_BYTES {
        return Err(format!(
            "state file {shown} is over {STATE_MAX_BYTES} bytes; expected a file written by \
             catamount --state"
        ));
    }
    let mut pid = None;
    let mut control_url = None;
    let mut token = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line == "---" || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("{shown}:{}: {what}", n + 1);
        let Some((key, value)) = line.split_once(':') else {
            return Err(bad("expected `key: value`"));
        };
        let value =
            unyaml(value.trim()).ok_or_else(|| bad("unterminated or malformed quoted value"))?;
        match key.trim() {
            "pid" => {
                pid = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| bad("pid is not a number"))?,
                )
            }
            "control_url" => control_url = Some(value),
            "control_auth_token" => token = Some(value),
            _ => {}
        }
    }
    let pid = pid.ok_or_else(|| {
        format!("state file {shown} has no pid line; expected a file written by catamount --state")
    })?;
    Ok(State {
        pid,
        control_url: control_url.filter(|u| !u.is_empty()),
        control_auth_token: token.filter(|t| !t.is_empty()),
    })
}

/// A YAML scalar: plain when every char is safe, else double-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:~@%+=-".contains(c))
        && !s.starts_with(['%', '@', '-', ':']);
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The inverse of [`yaml_scalar`] (plus single quotes, as YAML allows).
fn unyaml(v: &str) -> Option<String> {
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return None,
                c => out.push(c),
            }
        }
        return Some(out);
    }
    if let Some(inner) = v.strip_prefix('\'') {
        return Some(inner.strip_suffix('\'')?.replace("''", "'"));
    }
    Some(v.to_string())
}
