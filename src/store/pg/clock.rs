//! Times inside team-store records are kept on the database's clock. Every
//! host compares expiry times with its own clock (the refresh margin, a
//! token's status), and hosts' clocks differ: a laptop an hour ahead would
//! judge every token near expiry and refresh it again and again, and the
//! expiry it wrote would make the others serve a dead token for an hour. So
//! each process measures how far its clock is from the database's when it
//! connects, and shifts a record's times onto its own clock when reading and
//! back onto the database's when writing. Clocks within a couple of seconds of
//! the database's are taken as agreeing (no shift), so hosts kept in time by
//! NTP read and write exactly what they would without a store.

use crate::vault::VaultData;

/// Offsets smaller than this are measurement noise, not skew.
const NOISE_SECS: f64 = 2.0;

/// Seconds to add to this host's clock to get the database's, from one
/// reading of each (Unix seconds).
pub fn offset(db_now: f64, local_now: f64) -> i64 {
    let d = db_now - local_now;
    if d.abs() < NOISE_SECS {
        0
    } else {
        d.round() as i64
    }
}

/// Move every time in `data` by `by` seconds (database → local: `-offset`;
/// local → database: `+offset`).
pub fn shift(data: &mut VaultData, by: i64) {
    if by == 0 {
        return;
    }
    let moved = |t: u64| t.saturating_add_signed(by);
    for c in data.connections.values_mut() {
        c.expires_at = c.expires_at.map(moved);
        c.obtained_at = moved(c.obtained_at);
    }
}

/// This host's clock now, in Unix seconds with a fraction.
pub fn local_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{Connection, Secret};

    #[test]
    fn small_differences_are_noise_and_a_shift_round_trips() {
        assert_eq!(offset(1000.4, 1000.0), 0);
        assert_eq!(offset(1000.0, 1001.9), 0);
        assert_eq!(offset(1000.0, 4600.2), -3600);
        let mut d = VaultData::default();
        let mut c = Connection::api_key("openai", "default", Secret::new("sk-x"));
        c.expires_at = Some(10_000);
        c.obtained_at = 9_000;
        d.put_connection(c);
        let original = d.clone();
        shift(&mut d, -3600);
        let c = d.connection("openai", None).unwrap();
        assert_eq!((c.expires_at, c.obtained_at), (Some(6_400), 5_400));
        shift(&mut d, 3600);
        assert_eq!(d, original);
    }
}
