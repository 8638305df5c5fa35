//! Which running stack a command means (stacks.md section 3): pure, over
//! what the runtime directory lists, so the rules are tested without
//! servers.
//!
//! 1. `-s NAME`: the stack of that name, or whose instance id is NAME;
//! 2. else the stack whose config lives in the current directory or the
//!    nearest parent where one runs;
//! 3. else the only running stack;
//! 4. else none (exit 4) or several (exit 5), each said with what was
//!    looked for.

use std::path::{Path, PathBuf};

/// A running stack, as selection sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub instance_id: String,
    /// The config file, canonical.
    pub config: PathBuf,
}

impl Candidate {
    /// `name (config path)`: how a list of candidates names each.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.config.display())
    }
}

#[derive(Debug, PartialEq)]
pub enum Pick {
    One(usize),
    /// Nothing fits; why, for the message.
    None(String),
    /// Several fit: why, and their indexes.
    Many(String, Vec<usize>),
}

/// `cwd` canonical. `wanted`: the `-s` value.
pub fn pick(cands: &[Candidate], wanted: Option<&str>, cwd: &Path) -> Pick {
    if let Some(w) = wanted {
        let hits: Vec<usize> =
            (0..cands.len()).filter(|&i| cands[i].name == w || cands[i].instance_id == w).collect();
        return match hits.as_slice() {
            [] => Pick::None(format!("no running stack is named \"{w}\"")),
            [one] => Pick::One(*one),
            _ => Pick::Many(format!("{} running stacks are named \"{w}\"", hits.len()), hits),
        };
    }
    if let Some(p) = nearest(cands, cwd) {
        return p;
    }
    match cands.len() {
        0 => Pick::None("no running stack".into()),
        1 => Pick::One(0),
        n => Pick::Many(
            format!("{n} stacks are running and none has its config here"),
            (0..n).collect(),
        ),
    }
}

/// Rule 2 alone: the stacks whose config is in `cwd` or its nearest parent
/// that has any; `None` when no running config is there.
pub fn nearest(cands: &[Candidate], cwd: &Path) -> Option<Pick> {
    cwd.ancestors().find_map(|dir| {
        let hits: Vec<usize> =
            (0..cands.len()).filter(|&i| cands[i].config.parent() == Some(dir)).collect();
        match hits.as_slice() {
            [] => None,
            [one] => Some(Pick::One(*one)),
            _ => {
                let why = format!("{} stacks run from configs in {}", hits.len(), dir.display());
                Some(Pick::Many(why, hits))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, id: &str, config: &str) -> Candidate {
        Candidate { name: name.into(), instance_id: id.into(), config: config.into() }
    }

    fn stacks() -> Vec<Candidate> {
        vec![
            c("shop", "i-1", "/work/shop/flowlayer.jsonc"),
            c("blog", "i-2", "/work/blog/flowlayer.jsonc"),
            c("blog", "i-3", "/srv/blog/flowlayer.jsonc"),
        ]
    }

    #[test]
    fn a_name_or_an_instance_id_picks_that_stack() {
        let s = stacks();
        assert_eq!(pick(&s, Some("shop"), Path::new("/")), Pick::One(0));
        assert_eq!(pick(&s, Some("i-3"), Path::new("/work/shop")), Pick::One(2));
        assert_eq!(
            pick(&s, Some("blog"), Path::new("/")),
            Pick::Many("2 running stacks are named \"blog\"".into(), vec![1, 2])
        );
        assert_eq!(
            pick(&s, Some("wiki"), Path::new("/")),
            Pick::None("no running stack is named \"wiki\"".into())
        );
    }

    #[test]
    fn the_config_in_this_directory_or_the_nearest_parent_wins() {
        let s = stacks();
        assert_eq!(pick(&s, None, Path::new("/work/blog")), Pick::One(1));
        assert_eq!(pick(&s, None, Path::new("/work/blog/src/deep")), Pick::One(1));
        assert_eq!(pick(&s, None, Path::new("/srv/blog/x")), Pick::One(2));
        let mut two = stacks();
        two.push(c("blog-e2e", "i-4", "/work/blog/e2e.jsonc"));
        assert!(
            matches!(pick(&two, None, Path::new("/work/blog")), Pick::Many(_, v) if v == [1, 3])
        );
    }

    #[test]
    fn elsewhere_the_only_stack_or_none_or_several() {
        let s = stacks();
        assert_eq!(pick(&s[..1], None, Path::new("/tmp")), Pick::One(0));
        assert_eq!(pick(&[], None, Path::new("/tmp")), Pick::None("no running stack".into()));
        assert!(matches!(pick(&s, None, Path::new("/tmp")), Pick::Many(_, v) if v == [0, 1, 2]));
    }
}
