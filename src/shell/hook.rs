//! `authsome hook SHELL`: the snippet a user evaluates from their rc file.
//!
//! Each snippet runs `authsome export SHELL` before every prompt (and, in zsh
//! and fish, right after `cd`), evaluates what it prints, and leaves `$?` as
//! the user's last command set it. The shell's state lives in the unexported
//! variable `__authsome_state` and is handed to that one process only. The binary is called by absolute path so the
//! hook keeps working whatever `PATH` a project or the user sets later.

use super::quote::quote;
use super::Shell;
use std::path::Path;

/// The snippet for `shell` calling the binary at `exe`; `None` for `json`, which has no hook.
pub fn snippet(shell: Shell, exe: &Path) -> Option<String> {
    let exe = quote(if shell == Shell::Fish { Shell::Fish } else { Shell::Bash }, &exe.to_string_lossy());
    Some(match shell {
        Shell::Bash => BASH.replace("@EXE@", &exe),
        Shell::Zsh => ZSH.replace("@EXE@", &exe),
        Shell::Fish => FISH.replace("@EXE@", &exe),
        Shell::Json => return None,
    })
}

/// bash: prepended to PROMPT_COMMAND, whether it is a string or (bash ≥ 5.1) an
/// array; the function returns the status it found so `$?` survives the hook.
const BASH: &str = r#"_authsome_hook() {
  local _authsome_status=$?
  eval "$(AUTHSOME_SHELL_STATE="${__authsome_state-}" @EXE@ export bash --pid "$$")"
  return $_authsome_status
}
if [[ "$(declare -p PROMPT_COMMAND 2>/dev/null)" == "declare -a"* ]]; then
  if [[ " ${PROMPT_COMMAND[*]} " != *" _authsome_hook "* ]]; then
    PROMPT_COMMAND=(_authsome_hook "${PROMPT_COMMAND[@]}")
  fi
elif [[ ";${PROMPT_COMMAND:-};" != *";_authsome_hook;"* ]]; then
  PROMPT_COMMAND="_authsome_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
fi
"#;

/// zsh: precmd (before each prompt) and chpwd (right after `cd`, so
/// `cd project && cmd` on one line already sees the project).
const ZSH: &str = r#"_authsome_hook() {
  local _authsome_status=$?
  eval "$(AUTHSOME_SHELL_STATE="${__authsome_state-}" @EXE@ export zsh --pid "$$")"
  return $_authsome_status
}
typeset -ag precmd_functions chpwd_functions
if (( ! ${precmd_functions[(I)_authsome_hook]} )); then
  precmd_functions=(_authsome_hook $precmd_functions)
fi
if (( ! ${chpwd_functions[(I)_authsome_hook]} )); then
  chpwd_functions=(_authsome_hook $chpwd_functions)
fi
"#;

/// fish: the prompt event and changes of PWD; fish keeps `$status` across event handlers.
const FISH: &str = r#"function __authsome_export_eval --on-event fish_prompt
    AUTHSOME_SHELL_STATE="$__authsome_state" @EXE@ export fish --pid $fish_pid | source
end
function __authsome_cd_hook --on-variable PWD
    AUTHSOME_SHELL_STATE="$__authsome_state" @EXE@ export fish --pid $fish_pid | source
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_quoted_path() {
        let s = snippet(Shell::Bash, Path::new("/opt/it's/authsome")).unwrap();
        assert!(s.contains(r#"'/opt/it'\''s/authsome' export bash --pid "$$")""#), "{s}");
        let f = snippet(Shell::Fish, Path::new("/opt/it's/authsome")).unwrap();
        assert!(f.contains(r"'/opt/it\'s/authsome' export fish"), "{f}");
        assert!(snippet(Shell::Json, Path::new("/x")).is_none());
    }
}
