//! PulseAudio's module argument syntax: `key=value` pairs separated by
//! white space, a value either bare (`rate=48000`), double-quoted
//! (`key="a value"`) or single-quoted (`key='a value'`); a backslash
//! takes the next character literally, in any of the three (`\"`, `\ `,
//! `\\`). Each key may appear once and must be one the module knows.
//! The same syntax writes a property list (`sink_properties=...`).

use std::collections::BTreeMap;

/// Why an argument string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// A word without `=` (`key` alone, or `=value` with no key).
    #[error("{0:?} is not key=value")]
    NotKeyValue(String),
    /// A quote was opened and not closed, or the string ends in `\`.
    #[error("unterminated value of {0:?}")]
    Unterminated(String),
    /// The same key twice.
    #[error("{0:?} given twice")]
    Duplicate(String),
    /// A key the module does not take.
    #[error("unknown argument {0:?}")]
    Unknown(String),
}

/// Parsed arguments, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args(BTreeMap<String, String>);

impl Args {
    /// Parses `s`, accepting only the keys in `valid` (all if `None`).
    pub fn parse(s: &str, valid: Option<&[&str]>) -> Result<Self, ArgError> {
        let mut map = BTreeMap::new();
        let mut chars = s.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                break;
            }
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
                key.push(c);
            }
            if chars.next_if_eq(&'=').is_none() || key.is_empty() {
                return Err(ArgError::NotKeyValue(key));
            }
            let value = value(&mut chars).ok_or_else(|| ArgError::Unterminated(key.clone()))?;
            if let Some(v) = valid {
                if !v.contains(&key.as_str()) {
                    return Err(ArgError::Unknown(key));
                }
            }
            if map.contains_key(&key) {
                return Err(ArgError::Duplicate(key));
            }
            map.insert(key, value);
        }
        Ok(Self(map))
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// These arguments with `key` set to `value` (replacing it).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Every pair, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One value (after the `=`): bare up to white space, or quoted; escapes
/// taken literally. `None`: unterminated.
fn value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let quote = chars.next_if(|c| *c == '"' || *c == '\'');
    let mut v = String::new();
    loop {
        match (chars.next(), quote) {
            (None, Some(_)) => return None,
            (None, None) => return Some(v),
            (Some('\\'), _) => v.push(chars.next()?),
            (Some(c), Some(q)) if c == q => return Some(v),
            (Some(c), None) if c.is_whitespace() => return Some(v),
            (Some(c), _) => v.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        Args::parse(s, None)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[test]
    fn bare_quoted_and_escaped_values() {
        assert_eq!(pairs(""), vec![]);
        assert_eq!(pairs("   "), vec![]);
        assert_eq!(
            pairs(" a=1  b=\"two words\" d=x\\ y e=\"q\\\"q\" f= g='it'"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("d".into(), "x y".into()),
                ("e".into(), "q\"q".into()),
                ("f".into(), "".into()),
                ("g".into(), "it".into()),
            ]
        );
        // What a shell hands over for
        // `sink_properties=device.description="My\ Sink"`: a bare value
        // keeps inner quotes, which the property list parse then reads.
        let args = Args::parse("sink_properties=device.description=\"My\\ Sink\"", None).unwrap();
        let props = args.get("sink_properties").unwrap();
        assert_eq!(props, "device.description=\"My Sink\"");
        let props = Args::parse(props, None).unwrap();
        assert_eq!(props.get("device.description"), Some("My Sink"));
        let props = Args::parse("device.description='My Sink' a=b", None).unwrap();
        assert_eq!(props.get("device.description"), Some("My Sink"));
    }

    #[test]
    fn bad_input_is_a_named_error() {
        let valid: &[&str] = &["a", "b"];
        assert_eq!(
            Args::parse("a", Some(valid)),
            Err(ArgError::NotKeyValue("a".into()))
        );
        assert_eq!(
            Args::parse("=1", Some(valid)),
            Err(ArgError::NotKeyValue("".into()))
        );
        assert_eq!(
            Args::parse("a=\"open", Some(valid)),
            Err(ArgError::Unterminated("a".into()))
        );
        assert_eq!(
            Args::parse("a=x\\", Some(valid)),
            Err(ArgError::Unterminated("a".into()))
        );
        assert_eq!(
            Args::parse("a=1 a=2", Some(valid)),
            Err(ArgError::Duplicate("a".into()))
        );
        assert_eq!(
            Args::parse("a=1 c=2", Some(valid)),
            Err(ArgError::Unknown("c".into()))
        );
        assert_eq!(
            Args::parse("b=2 a=1", Some(valid)).unwrap().get("a"),
            Some("1")
        );
    }
}
