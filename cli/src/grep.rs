//! `logs --grep RE`: a small regular expression matcher, pure, on the main
//! thread.
//!
//! Hand-written because the CLI needs only "does this line match", and a
//! regex crate would cost more build time than this file (spec/cli.md says
//! what RE supports). Matching is a Thompson NFA run breadth-first (a Pike
//! VM without captures): time is linear in the line's length times the
//! pattern's size, whatever the pattern, so no pattern can hang `logs -f`
//! on a long line. A pattern without any special character is a plain
//! substring search.
//!
//! Supported: literals; `.`; classes `[abc]`, `[a-z]`, `[^...]`; `\d \w \s`
//! and their negations `\D \W \S` (ASCII); `\t \n`; any other escaped
//! character stands for itself (`\.`, `\|`, `\(`); groups `(...)` and
//! `(?:...)`; alternation `|`; repetition `* + ? {n} {n,} {n,m}` (a lazy
//! `?` after one is accepted: for a yes/no match it changes nothing);
//! anchors `^ $` (start and end of the line); a leading `(?i)` makes the
//! whole pattern case-insensitive.

use std::fmt;

/// Instructions a pattern compiles to, at most this many (`a{1000}` and the
/// like are refused rather than made into a slow matcher).
const MAX_PROGRAM: usize = 20_000;
/// The largest count a `{n,m}` may give.
const MAX_REPEAT: u32 = 1000;

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// No special character: a substring search.
    Literal(String),
    Program {
        prog: Vec<Inst>,
        fold: bool,
    },
}

/// Why a pattern does not compile: what, and at which character (0-based).
#[derive(Debug, PartialEq)]
pub struct PatternError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at character {}", self.what, self.at + 1)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Item {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Set {
    One(char),
    Any,
    Class { negated: bool, items: Vec<Item> },
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Empty,
    Set(Set),
    Start,
    End,
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat { node: Box<Node>, min: u32, max: Option<u32> },
}

enum Escaped {
    Char(char),
    Item(Item),
}

#[derive(Clone, Debug)]
enum Inst {
    Char(Set),
    Split(usize, usize),
    Jmp(usize),
    Start,
    End,
    Match,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, PatternError> {
        let (fold, body) = match source.strip_prefix("(?i)") {
            Some(rest) => (true, rest),
            None => (false, source),
        };
        let offset = source.len() - body.len();
        let chars: Vec<char> = body.chars().collect();
        let mut p = Parser { chars: &chars, pos: 0, offset };
        let node = p.alternation()?;
        if p.pos < chars.len() {
            // alternation() stops only at an unmatched ')'.
            return Err(p.error("unmatched )"));
        }
        if !fold {
            if let Some(lit) = literal(&node) {
                return Ok(Pattern { kind: Kind::Literal(lit) });
            }
        }
        let mut prog = Vec::new();
        compile(&node, &mut prog, fold).ok_or(PatternError { at: 0, what: "pattern too large" })?;
        prog.push(Inst::Match);
        Ok(Pattern { kind: Kind::Program { prog, fold } })
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        match &self.kind {
            Kind::Literal(lit) => text.contains(lit.as_str()),
            Kind::Program { prog, fold } => run(prog, *fold, text),
        }
    }
}

/// The text of a pattern made of plain characters only.
fn literal(node: &Node) -> Option<String> {
    match node {
        Node::Set(Set::One(c)) => Some(c.to_string()),
        Node::Empty => Some(String::new()),
        Node::Cat(parts) => parts.iter().map(literal).collect(),
        _ => None,
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    /// Characters before `chars` in the source (`(?i)`), for positions.
    offset: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> PatternError {
        PatternError { at: self.offset + self.pos.min(self.chars.len().saturating_sub(1)), what }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Result<Node, PatternError> {
        let mut alts = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.sequence()?);
        }
        Ok(if alts.len() == 1 { alts.pop().unwrap_or(Node::Empty) } else { Node::Alt(alts) })
    }

    fn sequence(&mut self) -> Result<Node, PatternError> {
        let mut parts = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            parts.push(self.repeat(atom)?);
        }
        Ok(match parts.len() {
            0 => Node::Empty,
            1 => parts.pop().unwrap_or(Node::Empty),
            _ => Node::Cat(parts),
        })
    }

    fn atom(&mut self) -> Result<Node, PatternError> {
        let Some(c) = self.peek() else { return Err(self.error("unexpected end")) };
        self.pos += 1;
        Ok(match c {
            '.' => Node::Set(Set::Any),
            '^' => Node::Start,
            '$' => Node::End,
            '*' | '+' | '?' => {
                self.pos -= 1;
                return Err(self.error("nothing to repeat"));
            }
            '(' => {
                if self.chars.get(self.pos..self.pos + 2) == Some(&['?', ':']) {
                    self.pos += 2;
                } else if self.peek() == Some('?') {
                    return Err(self.error("unsupported group syntax"));
                }
                let open = self.pos - 1;
                let inner = self.alternation()?;
                if self.peek() != Some(')') {
                    self.pos = open;
                    return Err(self.error("unclosed ("));
                }
                self.pos += 1;
                inner
            }
            '[' => Node::Set(self.class()?),
            '\\' => Node::Set(match self.escape()? {
                Escaped::Char(c) => Set::One(c),
                Escaped::Item(i) => Set::Class { negated: false, items: vec![i] },
            }),
            c => Node::Set(Set::One(c)),
        })
    }

    /// After a `\`: one character, or a class item (`\d`).
    fn escape(&mut self) -> Result<Escaped, PatternError> {
        let Some(c) = self.peek() else { return Err(self.error("trailing \\")) };
        self.pos += 1;
        Ok(match c {
            'd' => Escaped::Item(Item::Digit(true)),
            'D' => Escaped::Item(Item::Digit(false)),
            'w' => Escaped::Item(Item::Word(true)),
            'W' => Escaped::Item(Item::Word(false)),
            's' => Escaped::Item(Item::Space(true)),
            'S' => Escaped::Item(Item::Space(false)),
            't' => Escaped::Char('\t'),
            'n' => Escaped::Char('\n'),
            'r' => Escaped::Char('\r'),
            c if c.is_ascii_alphanumeric() => {
                self.pos -= 1;
                return Err(self.error("unsupported escape"));
            }
            c => Escaped::Char(c),
        })
    }

    fn class(&mut self) -> Result<Set, PatternError> {
        let open = self.pos - 1;
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                self.pos = open;
                return Err(self.error("unclosed ["));
            };
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                match self.escape()? {
                    Escaped::Char(c) => c,
                    Escaped::Item(i) => {
                        items.push(i);
                        continue;
                    }
                }
            } else {
                c
            };
            // `a-z`, but a `-` first or last is itself.
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let Some(mut hi) = self.peek() else { return Err(self.error("unclosed [")) };
                self.pos += 1;
                if hi == '\\' {
                    match self.escape()? {
                        Escaped::Char(c) => hi = c,
                        Escaped::Item(_) => return Err(self.error("a class cannot end a range")),
                    }
                }
                if hi < lo {
                    self.pos -= 1;
                    return Err(self.error("range out of order"));
                }
                items.push(Item::Range(lo, hi));
            } else {
                items.push(Item::Range(lo, lo));
            }
        }
        Ok(Set::Class { negated, items })
    }

    fn repeat(&mut self, atom: Node) -> Result<Node, PatternError> {
        let mut node = atom;
        loop {
            let at = self.pos;
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => match self.counts() {
                    Some(mm) => mm,
                    None => return Ok(node),
                },
                _ => return Ok(node),
            };
            if self.pos == at {
                self.pos += 1;
            }
            if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
                self.pos = at;
                return Err(self.error("repetition count above 1000"));
            }
            if matches!(node, Node::Start | Node::End | Node::Empty) {
                self.pos = at;
                return Err(self.error("nothing to repeat"));
            }
            // A lazy marker changes which match is found, not whether one is.
            if self.peek() == Some('?') {
                self.pos += 1;
            }
            node = Node::Repeat { node: Box::new(node), min, max };
        }
    }

    /// `{n}`, `{n,}`, `{n,m}` at the current position; consumes it. `None`
    /// (nothing consumed): not a count, so `{` is a literal.
    fn counts(&mut self) -> Option<(u32, Option<u32>)> {
        let rest: String = self.chars[self.pos..].iter().take_while(|&&c| c != '}').collect();
        let body = rest.strip_prefix('{')?;
        if self.chars.get(self.pos + rest.chars().count()) != Some(&'}') {
            return None;
        }
        let (min, max) = match body.split_once(',') {
            None => {
                let n = body.parse().ok()?;
                (n, Some(n))
            }
            Some((a, "")) => (a.parse().ok()?, None),
            Some((a, b)) => (a.parse().ok()?, Some(b.parse().ok()?)),
        };
        if max.is_some_and(|m| m < min) {
            return None;
        }
        self.pos += rest.chars().count() + 1;
        Some((min, max))
    }
}

/// Appends `node`'s instructions; `None` when the program grows too large.
fn compile(node: &Node, prog: &mut Vec<Inst>, fold: bool) -> Option<()> {
    if prog.len() > MAX_PROGRAM {
        return None;
    }
    match node {
        Node::Empty => {}
        Node::Set(s) => prog.push(Inst::Char(if fold { fold_set(s) } else { s.clone() })),
        Node::Start => prog.push(Inst::Start),
        Node::End => prog.push(Inst::End),
        Node::Cat(parts) => {
            for p in parts {
                compile(p, prog, fold)?;
            }
        }
        Node::Alt(alts) => {
            // split L1, next; L1: alt0; jmp end; next: split L2, ... ; last alt
            let mut jumps = Vec::new();
            for (i, a) in alts.iter().enumerate() {
                if i + 1 < alts.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(a, prog, fold)?;
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    compile(a, prog, fold)?;
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat { node, min, max } => {
            for _ in 0..*min {
                compile(node, prog, fold)?;
            }
            match max {
                None => {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(node, prog, fold)?;
                    prog.push(Inst::Jmp(split));
                    let end = prog.len();
                    prog[split] = Inst::Split(split + 1, end);
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(0, 0));
                        compile(node, prog, fold)?;
                        if prog.len() > MAX_PROGRAM {
                            return None;
                        }
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    (prog.len() <= MAX_PROGRAM).then_some(())
}

/// The set, for matching against lowercased text.
fn fold_set(s: &Set) -> Set {
    match s {
        Set::One(c) => Set::One(lower(*c)),
        other => other.clone(),
    }
}

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

fn upper(c: char) -> char {
    c.to_uppercase().next().unwrap_or(c)
}

fn item_has(item: &Item, c: char) -> bool {
    match *item {
        Item::Range(lo, hi) => lo <= c && c <= hi,
        Item::Digit(yes) => c.is_ascii_digit() == yes,
        Item::Word(yes) => (c.is_ascii_alphanumeric() || c == '_') == yes,
        Item::Space(yes) => c.is_ascii_whitespace() == yes,
    }
}

/// `c` is already lowercased when `fold`.
fn set_has(set: &Set, c: char, fold: bool) -> bool {
    match set {
        Set::One(x) => *x == c,
        Set::Any => true,
        Set::Class { negated, items } => {
            let hit = items
                .iter()
                .any(|i| item_has(i, c) || (fold && (item_has(i, upper(c)) || item_has(i, c))));
            hit != *negated
        }
    }
}

/// The threads at one position: a sparse set of instruction indexes.
struct Threads {
    dense: Vec<usize>,
    sparse: Vec<usize>,
}

impl Threads {
    fn new(n: usize) -> Threads {
        Threads { dense: Vec::with_capacity(n), sparse: vec![0; n] }
    }

    fn contains(&self, pc: usize) -> bool {
        let i = self.sparse[pc];
        i < self.dense.len() && self.dense[i] == pc
    }

    fn insert(&mut self, pc: usize) {
        self.sparse[pc] = self.dense.len();
        self.dense.push(pc);
    }
}

/// Adds the thread at `pc` and everything it reaches without reading a
/// character. `true` when that reaches `Match`.
fn add(
    prog: &[Inst],
    list: &mut Threads,
    stack: &mut Vec<usize>,
    pc: usize,
    at_start: bool,
    at_end: bool,
) -> bool {
    stack.push(pc);
    let mut matched = false;
    while let Some(pc) = stack.pop() {
        if list.contains(pc) {
            continue;
        }
        list.insert(pc);
        match prog[pc] {
            Inst::Jmp(t) => stack.push(t),
            Inst::Split(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Inst::Start if at_start => stack.push(pc + 1),
            Inst::End if at_end => stack.push(pc + 1),
            Inst::Match => matched = true,
            Inst::Start | Inst::End | Inst::Char(_) => {}
        }
    }
    matched
}

fn run(prog: &[Inst], fold: bool, text: &str) -> bool {
    let mut cur = Threads::new(prog.len());
    let mut next = Threads::new(prog.len());
    let mut stack = Vec::new();
    let mut chars = text.chars().peekable();
    let mut at_start = true;
    loop {
        let at_end = chars.peek().is_none();
        // A match may begin at every position.
        if add(prog, &mut cur, &mut stack, 0, at_start, at_end) {
            return true;
        }
        let Some(c) = chars.next() else { return false };
        let c = if fold { lower(c) } else { c };
        let at_end = chars.peek().is_none();
        for i in 0..cur.dense.len() {
            let pc = cur.dense[i];
            if let Inst::Char(set) = &prog[pc] {
                if set_has(set, c, fold) && add(prog, &mut next, &mut stack, pc + 1, false, at_end)
                {
                    return true;
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
        next.dense.clear();
        at_start = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::new(p).unwrap_or_else(|e| panic!("{p}: {e}")).is_match(t)
    }

    #[test]
    fn plain_words_are_a_substring_search() {
        assert!(m("ERROR", "12:00 ERROR db down"));
        assert!(!m("ERROR", "12:00 error db down"));
        assert!(m("", "anything"));
        assert!(matches!(Pattern::new("a b").unwrap().kind, Kind::Literal(_)));
    }

    #[test]
    fn alternation_groups_and_repetition_match_as_in_ere() {
        assert!(m("ERROR|WARN", "a WARN b"));
        assert!(!m("ERROR|WARN", "info"));
        assert!(m("user=\\d+ (logged in|out)", "user=42 logged in"));
        assert!(!m("user=\\d+ (logged in|out)", "user= logged in"));
        assert!(m("^GET /api/v[12]/", "GET /api/v2/users"));
        assert!(!m("^GET", " GET /"));
        assert!(m("done$", "all done"));
        assert!(!m("done$", "done twice"));
        assert!(m("a{3}", "baaab"));
        assert!(!m("^a{3}$", "aaaa"));
        assert!(m("^a{2,3}$", "aaa"));
        assert!(m("^(ab){2,}$", "ababab"));
        assert!(m("colou?r", "color"));
        assert!(m("x.*?y", "x123y"));
        assert!(m("[^0-9]", "12a"));
        assert!(!m("^[^0-9]+$", "12a"));
        assert!(m("a-b[-x]", "a-b-"));
        assert!(m("\\.jsonc?$", "flowlayer.jsonc"));
        assert!(m("\\s\\w+\\S", " ab!"));
        assert!(m("a{x", "a{x"), "a brace that is no count is itself");
        assert!(m("(?:a|b)c", "bc"));
    }

    #[test]
    fn a_leading_i_flag_ignores_case() {
        assert!(m("(?i)error", "ERROR: x"));
        assert!(m("(?i)[a-c]x", "BX"));
        assert!(m("(?i)ERR(OR)?", "err"));
        assert!(!m("(?i)^warn", "a warn"));
    }

    #[test]
    fn nested_stars_run_in_linear_time() {
        let text = "a".repeat(5000);
        assert!(!m("(a*)*b", &text));
        assert!(m("(a|aa)+$", &text));
    }

    #[test]
    fn bad_patterns_say_what_and_where() {
        let e = |p: &str| Pattern::new(p).unwrap_err();
        assert_eq!(e("a(b"), PatternError { at: 1, what: "unclosed (" });
        assert_eq!(e("ab)"), PatternError { at: 2, what: "unmatched )" });
        assert_eq!(e("*a"), PatternError { at: 0, what: "nothing to repeat" });
        assert_eq!(e("[ab"), PatternError { at: 0, what: "unclosed [" });
        assert_eq!(e("[z-a]"), PatternError { at: 3, what: "range out of order" });
        assert_eq!(e("\\q"), PatternError { at: 1, what: "unsupported escape" });
        assert_eq!(e("(?=a)"), PatternError { at: 1, what: "unsupported group syntax" });
        assert_eq!(e("a{5000}"), PatternError { at: 1, what: "repetition count above 1000" });
        assert!(Pattern::new("(a{999}){999}").is_err_and(|e| e.what == "pattern too large"));
        assert_eq!(e("(?i)(x").to_string(), "unclosed ( at character 5");
    }
}
