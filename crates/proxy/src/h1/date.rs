//! The `Date` header the fast path adds to a response that has none (as hyper
//! does), formatted once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The second last formatted, and `date: <IMF-fixdate>\r\n` for it.
    static CACHE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// Appends `date: <now>\r\n` to `out`.
pub(crate) fn put(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != second {
            cache.1.clear();
            cache.1.extend_from_slice(b"date: ");
            cache
                .1
                .extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            cache.1.extend_from_slice(b"\r\n");
            cache.0 = second;
        }
        out.extend_from_slice(&cache.1);
    });
}
