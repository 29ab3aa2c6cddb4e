//! Properties of completion candidates (issue 17): whatever a name holds, the word bash gets
//! is that one name when bash reads it as clap_complete's script does, and runs nothing; and
//! what that word means when typed back narrows to the name again.

use std::io::Write;

use proptest::prelude::*;

use super::config;
use crate::complete::shells::{Shell, dequoted, insertable};

/// A name of characters shells read as syntax, plain ones, and ones no shell inserts safely.
fn name() -> impl Strategy<Value = String> {
    let mut chars: Vec<char> = (' '..='~').collect();
    chars.extend([
        'é', '漢', '\u{a0}', '\u{202e}', '\u{200b}', '\t', '\n', '\u{b}', '\u{85}',
    ]);
    prop::collection::vec(prop::sample::select(chars), 1..16).prop_map(String::from_iter)
}

/// Reads the replies as clap_complete's bash script does (split at vertical tabs, then
/// globbed, with bash-completion's extglob), puts each on a command line as readline does,
/// and prints the words that line passes, each ended by \x01, each reply ended by \x02.
const BASH: &str = r#"
shopt -s extglob
IFS=$'\013'
replies=( $(cat "$1") )
IFS=$' \t\n'
for reply in "${replies[@]}"; do
    eval "printf '%s\001' $reply"
    printf '\002'
done
"#;

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn a_bash_reply_is_exactly_its_name(names in prop::collection::vec(name(), 1..8)) {
        let offered: Vec<(String, String)> = names
            .iter()
            .filter_map(|n| Some((n.clone(), insertable(Shell::Bash, n.as_ref())?)))
            .collect();
        let invisible = ['\u{202e}', '\u{200b}'];
        for (name, _) in &offered {
            let unsafe_char = name.chars().any(|c| c.is_control() || invisible.contains(&c));
            prop_assert!(!unsafe_char, "{:?} offered", name);
        }
        prop_assume!(!offered.is_empty());
        let dir = tempfile::tempdir().unwrap();
        // Files a reply that is still a pattern could match.
        for file in ["a", "ab", "x y", "é"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        let replies = dir.path().join("replies");
        let mut file = std::fs::File::create(&replies).unwrap();
        let joined: Vec<&str> = offered.iter().map(|(_, word)| word.as_str()).collect();
        file.write_all(joined.join("\u{b}").as_bytes()).unwrap();
        drop(file);
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", BASH, "bash"])
            .arg(&replies)
            .current_dir(dir.path())
            .output()
            .unwrap();
        prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let expected: String = offered.iter().map(|(name, _)| format!("{name}\u{1}\u{2}")).collect();
        prop_assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
        // Nothing but the files made above: no reply ran anything.
        prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
        for (name, word) in &offered {
            let typed = dequoted(Shell::Bash, word.into());
            prop_assert_eq!(typed.to_str(), Some(name.as_str()), "{}", word);
        }
    }
}
