//! "Did you mean …?": the known word closest to a misspelt one.

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a plausible typo (at most a third of the word's length, at least 1);
/// otherwise the only candidate that `word` abbreviates ("prod" → "production").
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    typo(word, &candidates).or_else(|| abbreviated(word, &candidates))
}

fn abbreviated<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if word.chars().count() < 2 {
        return None;
    }
    let mut matches = candidates
        .iter()
        .filter(|candidate| candidate.starts_with(word));
    match (matches.next(), matches.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

fn typo<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .copied()
        .map(|candidate| (distance(word, candidate), candidate))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars, case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(closest("wrker", ["http", "worker"]), Some("worker"));
        assert_eq!(closest("nme", ["name"]), Some("name"));
        assert_eq!(closest("replica", ["replicas", "env"]), Some("replicas"));
        assert_eq!(closest("database", ["app", "server", "state"]), None);
        assert_eq!(
            closest("prod", ["production", "staging"]),
            Some("production")
        );
        assert_eq!(closest("s", ["staging", "production"]), None);
        assert_eq!(closest("st", ["staging", "stable"]), None);
    }
}
