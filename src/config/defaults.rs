//! `/etc/default/portsentry`: which modes the init script and the systemd unit start
//! (`TCP_MODE`, `UDP_MODE`). Pure: text in, the mode options or a message naming the file,
//! line and key out.
//!
//! Debian's file is two plain assignments (`TCP_MODE="tcp"`). It used to be sourced by the
//! shell, which runs whatever else it holds; this reads it the way systemd reads an
//! `EnvironmentFile=`: assignments only (optionally after `export`), values unquoted, in
//! single quotes or in double quotes with backslash escapes, comments and blank lines. A
//! construct only a shell could evaluate (`$VAR`, `` `cmd` ``, `$(cmd)`, `;`, a pipe, a
//! redirection) is an error with its line, never run. A later assignment wins, as in sh.

/// The two keys that matter, as written (None: not assigned).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// TCP_MODE and its line.
    pub tcp_mode: Option<(String, usize)>,
    /// UDP_MODE and its line.
    pub udp_mode: Option<(String, usize)>,
}

/// What `modes` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modes {
    /// The options to start with: `-tcp -udp`, `-stcp`, ...
    Run(String),
    /// Both modes empty: nothing to run.
    Nothing,
}

/// A problem, as one line for stderr (file, line and key named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultsError(pub String);

/// Parse the file's text. `file` names it in messages.
pub fn parse(file: &str, text: &[u8]) -> Result<Defaults, DefaultsError> {
    let text = std::str::from_utf8(text).map_err(|e| {
        let line = text[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DefaultsError(format!("{file}:{line}: not valid UTF-8 text"))
    })?;
    let mut d = Defaults::default();
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let Some((name, value)) = assignment(line).map_err(|why| {
            DefaultsError(format!(
                "{file}:{n}: {why} (only NAME=value assignments are read; nothing is run)"
            ))
        })?
        else {
            continue;
        };
        match name {
            "TCP_MODE" => d.tcp_mode = Some((value, n)),
            "UDP_MODE" => d.udp_mode = Some((value, n)),
            _ => {}
        }
    }
    Ok(d)
}

/// The mode options for the parsed file, or a message naming the bad key.
pub fn modes(file: &str, d: &Defaults) -> Result<Modes, DefaultsError> {
    let mut args = Vec::new();
    let keys = [
        ("TCP_MODE", &d.tcp_mode, ["tcp", "stcp", "atcp"]),
        ("UDP_MODE", &d.udp_mode, ["udp", "sudp", "audp"]),
    ];
    for (key, val, ok) in keys {
        let Some((v, line)) = val else { continue };
        if v.is_empty() {
            continue;
        }
        if !ok.contains(&v.as_str()) {
            return Err(DefaultsError(format!(
                "portsentry: {key}=\"{}\" in {file} (line {line}) is not a valid mode (use {}, {} or {} or leave it empty).",
                v.escape_debug(),
                ok[0],
                ok[1],
                ok[2]
            )));
        }
        args.push(format!("-{v}"));
    }
    if args.is_empty() {
        return Ok(Modes::Nothing);
    }
    Ok(Modes::Run(args.join(" ")))
}

/// The modes the file selects, as `portsentry --check` without a mode checks them. `text`
/// None: the file does not exist (no modes). Err names the file, line and key.
pub fn selected_modes(
    file: &str,
    text: Option<&[u8]>,
) -> Result<Vec<crate::config::mode::Mode>, DefaultsError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let d = parse(file, text)?;
    Ok(match modes(file, &d)? {
        Modes::Nothing => Vec::new(),
        Modes::Run(args) => args
            .split(' ')
            .filter_map(|a| crate::config::mode::Mode::from_name(a.trim_start_matches('-')))
            .collect(),
    })
}

/// The default file.
pub const DEFAULTS_FILE: &str = "/etc/default/portsentry";

/// `portsentry modes [--systemd] [--file FILE]`: what the init script and the unit run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModesArgs {
    /// The file to read.
    pub file: String,
    /// Exit 255 instead of 2 for an invalid file (systemd's ExecCondition= then fails the
    /// unit instead of skipping it).
    pub systemd: bool,
}

/// Is this `portsentry modes ...`?
pub fn selected(args: &[std::ffi::OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "modes")
}

/// Parse the arguments after `modes`.
pub fn parse_args(args: &[std::ffi::OsString]) -> Result<ModesArgs, String> {
    let mut m = ModesArgs {
        file: DEFAULTS_FILE.to_string(),
        systemd: false,
    };
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--systemd") => m.systemd = true,
            Some("--file") => {
                m.file = it
                    .next()
                    .and_then(|f| f.to_str())
                    .filter(|f| !f.is_empty())
                    .ok_or("--file needs a file name")?
                    .to_string();
            }
            _ => {
                return Err(format!(
                    "unknown argument {:?}\nusage: portsentry modes [--systemd] [--file FILE]",
                    a.to_string_lossy()
                ));
            }
        }
    }
    Ok(m)
}

/// The whole command, given the file's contents (None: the file does not exist, which
/// means no modes, as before). Returns what to print on stdout, on stderr, and the exit
/// status: 0 options printed, 1 no mode set, 2 (255 with --systemd) invalid.
pub fn command(m: &ModesArgs, text: Option<&[u8]>) -> (String, String, i32) {
    let invalid = if m.systemd { 255 } else { 2 };
    let d = match text.map(|t| parse(&m.file, t)) {
        None => {
            let msg = format!(
                "portsentry: no modes: {} does not exist; nothing to run.\n",
                m.file
            );
            return (String::new(), msg, 1);
        }
        Some(Ok(d)) => d,
        Some(Err(DefaultsError(e))) => {
            return (String::new(), format!("portsentry: {e}\n"), invalid);
        }
    };
    match modes(&m.file, &d) {
        Ok(Modes::Run(a)) => (format!("{a}\n"), String::new(), 0),
        Ok(Modes::Nothing) => (
            String::new(),
            format!(
                "portsentry: no modes in {} (TCP_MODE and UDP_MODE are empty): nothing to run.\n",
                m.file
            ),
            1,
        ),
        Err(DefaultsError(e)) => (String::new(), format!("{e}\n"), invalid),
    }
}

/// One line: None for a blank or comment line, the assignment, or why it is not one.
fn assignment(line: &str) -> Result<Option<(&str, String)>, String> {
    let t = line.trim_start_matches([' ', '\t']);
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let t = t
        .strip_prefix("export")
        .filter(|r| r.starts_with([' ', '\t']))
        .map_or(t, |r| r.trim_start_matches([' ', '\t']));
    let name_len = t
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(t.len(), |(i, _)| i);
    let (name, rest) = t.split_at(name_len);
    let Some(rest) = rest.strip_prefix('=').filter(|_| !name.is_empty()) else {
        return Err("not an assignment".to_string());
    };
    let mut value = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                // Only a comment may follow the value.
                let tail: String = chars.collect();
                let tail = tail.trim_start_matches([' ', '\t']);
                if tail.is_empty() || tail.starts_with('#') {
                    break;
                }
                return Err(format!("{name}: more than one word (quote the value)"));
            }
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("{name}: unterminated single quote")),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => value.push(c),
                        Some(c) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err(format!("{name}: unterminated double quote")),
                    },
                    Some('$' | '`') => {
                        return Err(format!("{name}: expansion ($ or `) is not supported"));
                    }
                    Some(c) => value.push(c),
                    None => return Err(format!("{name}: unterminated double quote")),
                }
            },
            '\\' => match chars.next() {
                Some(c) => value.push(c),
                None => return Err(format!("{name}: line continuation is not supported")),
            },
            '$' | '`' => return Err(format!("{name}: expansion ($ or `) is not supported")),
            ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                return Err(format!("{name}: shell syntax ({c}) is not supported"));
            }
            c => value.push(c),
        }
    }
    Ok(Some((name, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "/etc/default/portsentry";

    fn run(text: &str) -> Result<Modes, DefaultsError> {
        modes(F, &parse(F, text.as_bytes())?)
    }

    #[test]
    fn debian_file_and_the_shipped_one() {
        let debian = "# /etc/default/portsentry\n#\n# This file is read by /etc/init.d/portsentry. See the portsentry.8\n# manpage for details.\n#\n# The options in this file refer to commandline arguments (all in lowercase)\n# of portsentry. Use only one tcp and udp mode at a time.\n#\nTCP_MODE=\"tcp\"\nUDP_MODE=\"udp\"\n";
        assert_eq!(run(debian), Ok(Modes::Run("-tcp -udp".into())));
        let ours =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/default/portsentry"))
                .unwrap();
        assert!(matches!(run(&ours), Ok(Modes::Run(_))), "{:?}", run(&ours));
    }

    #[test]
    fn selected_modes_for_check() {
        use crate::config::mode::Mode;
        let m = |t: Option<&str>| selected_modes(F, t.map(str::as_bytes));
        assert_eq!(
            m(Some("TCP_MODE=\"atcp\"\nUDP_MODE=\"sudp\"\n")),
            Ok(vec![Mode::Atcp, Mode::Sudp])
        );
        assert_eq!(m(Some("UDP_MODE=udp\n")), Ok(vec![Mode::Udp]));
        assert_eq!(m(Some("TCP_MODE=\"\"\n")), Ok(vec![]));
        assert_eq!(m(None), Ok(vec![]));
        assert!(m(Some("TCP_MODE=$(id)\n")).unwrap_err().0.contains(":1:"));
    }

    #[test]
    fn the_forms_sh_accepts_for_a_plain_value() {
        for (text, want) in [
            ("TCP_MODE=stcp\n", "-stcp"),
            ("TCP_MODE='atcp'\nUDP_MODE=\"audp\"", "-atcp -audp"),
            ("  export TCP_MODE=\"tcp\"  # comment\r\n", "-tcp"),
            ("UDP_MODE=s\"u\"'dp'\n", "-sudp"),
            ("TCP_MODE=tcp\nTCP_MODE=stcp\n", "-stcp"),
            ("OTHER=\"anything at all\"\nUDP_MODE=udp\n", "-udp"),
        ] {
            assert_eq!(run(text), Ok(Modes::Run(want.into())), "{text:?}");
        }
        assert_eq!(run(""), Ok(Modes::Nothing));
        assert_eq!(run("TCP_MODE=\"\"\nUDP_MODE=''\n"), Ok(Modes::Nothing));
        assert_eq!(run("# only comments\n\n"), Ok(Modes::Nothing));
    }

    #[test]
    fn invalid_modes_name_key_value_and_line() {
        let e = run("\nTCP_MODE=\"bogus\"\nUDP_MODE=udp\n").unwrap_err().0;
        assert_eq!(
            e,
            "portsentry: TCP_MODE=\"bogus\" in /etc/default/portsentry (line 2) is not a valid mode (use tcp, stcp or atcp or leave it empty)."
        );
        let e = run("UDP_MODE=tcp\n").unwrap_err().0;
        assert!(
            e.contains("UDP_MODE=\"tcp\"") && e.contains("(line 1)"),
            "{e}"
        );
        // Control bytes are shown escaped.
        let e = run("TCP_MODE=\"a\u{1b}b\"\n").unwrap_err().0;
        assert!(e.contains("a\\u{1b}b"), "{e}");
    }

    #[test]
    fn shell_code_is_an_error_and_never_run() {
        for (text, why) in [
            ("TCP_MODE=$(rm -rf /)\n", "TCP_MODE: expansion"),
            ("TCP_MODE=\"`id`\"\n", "TCP_MODE: expansion"),
            ("TCP_MODE=\"$X\"\n", "TCP_MODE: expansion"),
            ("TCP_MODE=tcp; reboot\n", "TCP_MODE: shell syntax (;)"),
            ("TCP_MODE=tcp udp\n", "TCP_MODE: more than one word"),
            ("TCP_MODE=\"tcp\n", "TCP_MODE: unterminated double quote"),
            ("UDP_MODE='udp\n", "UDP_MODE: unterminated single quote"),
            ("TCP_MODE=tcp\\\n", "TCP_MODE: line continuation"),
            ("echo hello\n", "not an assignment"),
            ("=x\n", "not an assignment"),
            ("9X=1\n", "not an assignment"),
            ("exportTCP_MODE=tcp\n", ""),
        ] {
            match run(text) {
                Err(DefaultsError(e)) => {
                    assert!(e.starts_with(F) && e.contains(why), "{text:?}: {e}");
                    assert!(e.contains(":1: "), "{text:?}: {e}");
                }
                Ok(m) => {
                    // `exportTCP_MODE` is just another variable name to sh too.
                    assert_eq!(text, "exportTCP_MODE=tcp\n", "{m:?}");
                }
            }
        }
    }

    fn args(a: &[&str]) -> Result<ModesArgs, String> {
        let v: Vec<std::ffi::OsString> = ["portsentry", "modes"]
            .iter()
            .chain(a)
            .map(|s| s.into())
            .collect();
        assert!(selected(&v));
        parse_args(&v)
    }

    #[test]
    fn the_command_exit_codes_and_messages() {
        let m = args(&[]).unwrap();
        assert_eq!(m.file, DEFAULTS_FILE);
        assert_eq!(
            command(&m, Some(b"TCP_MODE=tcp\nUDP_MODE=udp\n")),
            ("-tcp -udp\n".into(), String::new(), 0)
        );
        let (out, err, code) = command(&m, None);
        assert_eq!((out.as_str(), code), ("", 1));
        assert!(
            err.contains("no modes: /etc/default/portsentry does not exist"),
            "{err}"
        );
        let (_, err, code) = command(&m, Some(b"# nothing set\n"));
        assert_eq!(code, 1);
        assert!(err.contains("no modes in /etc/default/portsentry"), "{err}");
        let (_, err, code) = command(&m, Some(b"TCP_MODE=bogus\n"));
        assert_eq!(code, 2);
        assert!(err.contains("TCP_MODE=\"bogus\"") && err.contains("not a valid mode"));
        let s = args(&["--systemd", "--file", "/tmp/x"]).unwrap();
        assert_eq!(s.file, "/tmp/x");
        assert_eq!(command(&s, Some(b"TCP_MODE=bogus\n")).2, 255);
        let (_, err, code) = command(&s, Some(b"TCP_MODE=$(id)\n"));
        assert_eq!(code, 255);
        assert!(
            err.starts_with("portsentry: /tmp/x:1: TCP_MODE: expansion"),
            "{err}"
        );
        assert!(args(&["--file"]).is_err());
        assert!(
            args(&["--bogus"])
                .unwrap_err()
                .contains("usage: portsentry modes")
        );
    }

    #[test]
    fn binary_garbage_and_bad_utf8() {
        let e = parse(F, b"TCP_MODE=tcp\n\xff\xfe\n").unwrap_err().0;
        assert_eq!(e, format!("{F}:2: not valid UTF-8 text"));
        let e = parse(F, b"TCP_MODE=t\0cp\n").map(|d| modes(F, &d));
        assert!(matches!(e, Ok(Err(_))), "{e:?}");
    }
}
