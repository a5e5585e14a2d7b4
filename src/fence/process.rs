//! authsome's own process, hardened against the child it runs (see
//! SECURITY.md): non-dumpable, so a same-user process can neither read its
//! `/proc/PID/environ`, `mem`, `fd/` or `cwd` nor ptrace it; and secrets handed
//! over in the environment (`AUTHSOME_VAULT_KEY`, `secret_env` variables) taken
//! out of it, value bytes overwritten in the environment block the kernel
//! shows as `/proc/PID/environ`, so no process forked later (the proxy helper,
//! a child) starts with them.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Secrets taken out of the environment, by variable name.
static TAKEN: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Make this process non-dumpable (`PR_SET_DUMPABLE` 0): its `/proc` entries
/// become root-owned and ptrace-protected. One syscall; `execve` of a child
/// resets it for the child, which keeps its own behaviour.
pub fn harden() {
    // SAFETY: prctl with integer arguments has no memory effects.
    unsafe {
        nix::libc::prctl(nix::libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Move `name` out of the environment: remember its value for [`taken`],
/// overwrite the value's bytes in place, and unset it (a second call returns
/// the remembered value). Must be called while the process is single-threaded
/// (environment writes are not thread-safe).
pub fn take(name: &str) -> Option<String> {
    let Ok(value) = std::env::var(name) else { return taken(name) };
    scrub_in_place(name);
    std::env::remove_var(name);
    TAKEN.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), value.clone());
    Some(value)
}

/// The value of `name`: taken earlier by [`take`], else still in the
/// environment (library users that set it themselves).
pub fn secret_var(name: &str) -> Option<String> {
    TAKEN.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned().or_else(|| std::env::var(name).ok())
}

/// What was taken from the environment, for the rare authsome process that
/// must pass it on to another authsome process (the shell's daemon, a login
/// started by `up`).
pub fn taken(name: &str) -> Option<String> {
    TAKEN.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
}

extern "C" {
    static mut environ: *mut *mut nix::libc::c_char;
}

/// Zero the value bytes of every `name=` entry of the C environment. The
/// strings of the initial environment are what `/proc/PID/environ` shows;
/// `unsetenv` alone only drops the pointer to them.
fn scrub_in_place(name: &str) {
    let prefix = format!("{name}=");
    // SAFETY: single-threaded (caller's contract); `environ` is a
    // NULL-terminated array of NUL-terminated strings owned by the process.
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let entry = *p;
            let len = nix::libc::strlen(entry);
            let bytes = std::slice::from_raw_parts_mut(entry as *mut u8, len);
            if bytes.starts_with(prefix.as_bytes()) {
                for b in &mut bytes[prefix.len()..] {
                    std::ptr::write_volatile(b, 0);
                }
            }
            p = p.add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_taken_variable_leaves_the_environment_and_stays_readable() {
        std::env::set_var("AUTHSOME_TEST_TAKEN_SECRET", "s3cret-value");
        assert_eq!(super::take("AUTHSOME_TEST_TAKEN_SECRET").as_deref(), Some("s3cret-value"));
        assert!(std::env::var_os("AUTHSOME_TEST_TAKEN_SECRET").is_none());
        assert_eq!(super::secret_var("AUTHSOME_TEST_TAKEN_SECRET").as_deref(), Some("s3cret-value"));
    }
}
