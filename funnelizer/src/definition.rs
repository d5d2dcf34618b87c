//! Funnel definitions: the TOML file format (a `[source]` mapping and `[[funnel]]` entries), its
//! validation with line/column errors, and the stable version hash of each funnel.
//!
//! See `docs/FUNNELS.md` for the format with examples.

use std::ops::Range;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::DefinitionError;
use crate::predicate::{Columns, Field, Literal, Op, Predicate, WhereParser};
use crate::row::{RowView, Table};

/// Bumped whenever the evaluation semantics change, so every funnel gets a new version.
const SEMANTICS: u32 = 1;

/// Most steps a funnel may have (step masks are `u32`).
pub const MAX_STEPS: usize = 32;

/// How steps must follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// ClickHouse `windowFunnel(W)`: steps in order, other events allowed in between.
    Ordered,
    /// ClickHouse `windowFunnel(W, 'strict_order')`: no other event of the funnel's tables may
    /// come between steps.
    StrictOrder,
    /// All steps within `W` of the first one, in any order (PostHog "unordered").
    Unordered,
}

impl Mode {
    /// The name used in definition files.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ordered => "ordered",
            Mode::StrictOrder => "strict_order",
            Mode::Unordered => "unordered",
        }
    }
}

/// Where one table's rows come from and which columns mean what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSource {
    /// `keyspace.table`.
    pub table: String,
    /// The app column (a partition-key column for streaming; any column otherwise: the run shuffles).
    pub app: String,
    /// The actor column (a partition-key column for streaming; any column otherwise: the run shuffles).
    pub actor: String,
    /// The time column (`timestamp`).
    pub time: String,
    /// The event-name column (events only).
    pub name: Option<String>,
}

/// The `[source]` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// App events.
    pub events: TableSource,
    /// Attributed hits (hit→event conversions).
    pub conversions: TableSource,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            events: TableSource {
                table: "tracking.events".into(),
                app: "app_id".into(),
                actor: "actor_id".into(),
                time: "ts".into(),
                name: Some("name".into()),
            },
            conversions: TableSource {
                table: "tracking.conversions".into(),
                app: "app_id".into(),
                actor: "actor_id".into(),
                time: "hit_ts".into(),
                name: None,
            },
        }
    }
}

impl Source {
    /// The mapping of one table.
    pub fn of(&self, table: Table) -> &TableSource {
        match table {
            Table::Events => &self.events,
            Table::Conversions => &self.conversions,
        }
    }
}

/// Which rows a step (or exclusion) matches: rows of one table satisfying a predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    /// The table the rows must come from.
    pub table: Table,
    /// The condition on the row.
    pub predicate: Predicate,
}

impl Matcher {
    /// Whether `row` matches.
    pub fn matches<R: RowView + ?Sized>(&self, row: &R) -> bool {
        row.table() == self.table && self.predicate.eval(row)
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"table": self.table.name(), "where": self.predicate.to_json()})
    }
}

/// One funnel step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The display name given in the definition (`name = "…"`).
    pub name: Option<String>,
    /// What it matches, for people: `install`, `signup | login`, `hit tracker = fb`,
    /// `purchase where props.plan in (pro, team)`.
    pub description: String,
    /// What it matches.
    pub matcher: Matcher,
}

impl Step {
    /// How the step is shown: its `name`, else what it matches ([`Step::description`]).
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.description)
    }
}

/// An exclusion: a matching row strictly between steps `j` and `j+1` (for `from <= j < to`) voids
/// the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    /// Display name.
    pub name: String,
    /// What it matches.
    pub matcher: Matcher,
    /// 1-based step range `[from, to]` the exclusion applies between.
    pub between: (usize, usize),
}

/// One funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    /// Identifier (unique in the file).
    pub id: String,
    /// Stable hash of the canonical definition (16 hex digits).
    pub version: String,
    /// Steps, 1..=32.
    pub steps: Vec<Step>,
    /// Conversion window in seconds.
    pub window_s: i64,
    /// Step ordering mode.
    pub mode: Mode,
    /// Exclusion steps.
    pub exclusions: Vec<Exclusion>,
    /// Breakdown property, per table (`[events, conversions]`), read from the first-touch row.
    pub breakdown: Option<[Field; 2]>,
}

impl Funnel {
    /// The window in milliseconds.
    pub fn window_ms(&self) -> i64 {
        self.window_s.saturating_mul(1000)
    }

    /// What the actors counted at `level` (1-based) did, for people: reached that step (its
    /// [`Step::label`]); in unordered funnels, covered at least that many distinct steps (`≥ 2 steps`),
    /// whichever they were.
    pub fn level_label(&self, level: usize) -> String {
        match self.mode {
            Mode::Unordered if level == 1 => "≥ 1 step".to_string(),
            Mode::Unordered => format!("≥ {level} steps"),
            _ => self
                .steps
                .get(level.wrapping_sub(1))
                .map_or_else(|| format!("step {level}"), |s| s.label().to_string()),
        }
    }

    /// [`Funnel::level_label`] of every level, 1 to the number of steps.
    pub fn level_labels(&self) -> Vec<String> {
        (1..=self.steps.len())
            .map(|k| self.level_label(k))
            .collect()
    }

    /// Whether any step or exclusion reads `table` (rows of other tables are not part of this
    /// funnel's timeline, which matters for `strict_order`).
    pub fn uses(&self, table: Table) -> bool {
        self.steps.iter().any(|s| s.matcher.table == table)
            || self.exclusions.iter().any(|e| e.matcher.table == table)
    }
}

/// A parsed definition file: the source mapping and all funnels, with the columns they read.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelSet {
    /// The source mapping.
    pub source: Source,
    /// The funnels, in file order.
    pub funnels: Vec<Funnel>,
    columns: Columns,
}

impl FunnelSet {
    /// Parses a definition file's text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<FunnelSet, DefinitionError> {
        Parser { text, origin }.parse()
    }

    /// Reads and parses a definition file.
    pub fn load(path: &Path) -> Result<FunnelSet, DefinitionError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DefinitionError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        FunnelSet::parse(&text, &origin)
    }

    /// The columns of `table` the definitions read, indexed by [`crate::ColumnRef::id`].
    pub fn columns(&self, table: Table) -> &[String] {
        self.columns.of(table)
    }

    /// The funnel with this id.
    pub fn funnel(&self, id: &str) -> Option<&Funnel> {
        self.funnels.iter().find(|f| f.id == id)
    }
}

struct Parser<'a> {
    text: &'a str,
    origin: &'a str,
}

type Entry<'a, 'i> = (&'a str, Range<usize>, &'a Spanned<DeValue<'i>>);

/// A table's entries in file order (the parsed table keeps its keys sorted by name).
fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut v: Vec<Entry<'a, 'i>> = t
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
        .collect();
    v.sort_by_key(|(_, span, _)| span.start);
    v
}

/// The mistake that comes first in the file, of all those noted.
#[derive(Default)]
struct FirstError(Option<DefinitionError>);

impl FirstError {
    fn push(&mut self, e: DefinitionError) {
        match &self.0 {
            Some(f) if (f.line, f.column) <= (e.line, e.column) => {}
            _ => self.0 = Some(e),
        }
    }

    /// The value, or `None` after noting its error.
    fn note<T>(&mut self, r: Result<T, DefinitionError>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }
}

impl<'a> Parser<'a> {
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> DefinitionError {
        DefinitionError::at(self.text, self.origin, span, msg)
    }

    fn table<'t, 'i>(
        &self,
        v: &'t Spanned<DeValue<'i>>,
        what: &str,
    ) -> Result<&'t DeTable<'i>, DefinitionError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            other => Err(self.err(
                v.span(),
                format!("{what} must be a table, found {}", other.type_str()),
            )),
        }
    }

    fn string(&self, v: &Spanned<DeValue<'_>>, what: &str) -> Result<String, DefinitionError> {
        match v.get_ref() {
            DeValue::String(s) if !s.is_empty() => Ok(s.to_string()),
            DeValue::String(_) => Err(self.err(v.span(), format!("{what} must not be empty"))),
            other => Err(self.err(
                v.span(),
                format!("{what} must be a string, found {}", other.type_str()),
            )),
        }
    }

    fn unknown(&self, key: &str, span: Range<usize>, allowed: &[&str]) -> DefinitionError {
        self.err(
            span,
            format!("unknown key `{key}` (allowed here: {})", allowed.join(", ")),
        )
    }

    fn parse(&self) -> Result<FunnelSet, DefinitionError> {
        let doc = DeTable::parse(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            self.err(span, e.message().trim().to_string())
        })?;
        let mut first = FirstError::default();
        let mut source = Source::default();
        let mut funnel_values = Vec::new();
        for (key, span, v) in entries(doc.get_ref()) {
            match key {
                "source" => {
                    first.note(self.source(v, &mut source));
                }
                "funnel" => match v.get_ref() {
                    DeValue::Array(items) => funnel_values.extend(items.iter()),
                    _ => first.push(self.err(v.span(), "write funnels as [[funnel]] tables")),
                },
                _ => first.push(self.unknown(key, span, &["source", "funnel"])),
            }
        }
        let mut columns = Columns::default();
        let mut funnels: Vec<Funnel> = Vec::new();
        for fv in &funnel_values {
            let Some(f) = first.note(self.funnel(fv, &source, &mut columns)) else {
                continue;
            };
            if funnels.iter().any(|g| g.id == f.id) {
                let span = self
                    .table(fv, "a funnel")?
                    .iter()
                    .find(|(k, _)| k.get_ref() == "id")
                    .map(|(_, v)| v.span())
                    .unwrap_or(fv.span());
                first.push(self.err(span, format!("duplicate funnel id `{}`", f.id)));
            }
            funnels.push(f);
        }
        if let Some(e) = first.0 {
            return Err(e);
        }
        if funnel_values.is_empty() {
            return Err(self.err(0..0, "no funnels defined: add a [[funnel]] table"));
        }
        Ok(FunnelSet {
            source,
            funnels,
            columns,
        })
    }

    fn source(&self, v: &Spanned<DeValue<'_>>, source: &mut Source) -> Result<(), DefinitionError> {
        for (key, span, tv) in entries(self.table(v, "[source]")?) {
            let target = match key {
                "events" => &mut source.events,
                "conversions" => &mut source.conversions,
                _ => return Err(self.unknown(key, span, &["events", "conversions"])),
            };
            let is_events = key == "events";
            for (k, ks, cv) in entries(self.table(tv, key)?) {
                match k {
                    "table" => target.table = self.string(cv, "table")?,
                    "app" => target.app = self.string(cv, "app")?,
                    "actor" => target.actor = self.string(cv, "actor")?,
                    "time" => target.time = self.string(cv, "time")?,
                    "name" if is_events => target.name = Some(self.string(cv, "name")?),
                    _ => {
                        let allowed: &[&str] = if is_events {
                            &["table", "app", "actor", "time", "name"]
                        } else {
                            &["table", "app", "actor", "time"]
                        };
                        return Err(self.unknown(k, ks, allowed));
                    }
                }
            }
        }
        Ok(())
    }

    fn window(&self, v: &Spanned<DeValue<'_>>) -> Result<i64, DefinitionError> {
        let bad = || {
            self.err(
                v.span(),
                "window must be a positive duration like \"7d\", \"24h\", \"30m\", \"90s\" or a number of seconds",
            )
        };
        let secs = match v.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).map_err(|_| bad())?
            }
            DeValue::String(s) => {
                let s = s.trim();
                let (num, unit) =
                    s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
                let n: i64 = num.parse().map_err(|_| bad())?;
                let mult = match unit.trim() {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    "w" => 7 * 86_400,
                    _ => return Err(bad()),
                };
                n.checked_mul(mult).ok_or_else(bad)?
            }
            _ => return Err(bad()),
        };
        if secs <= 0 {
            return Err(bad());
        }
        Ok(secs)
    }

    fn funnel(
        &self,
        fv: &Spanned<DeValue<'_>>,
        source: &Source,
        columns: &mut Columns,
    ) -> Result<Funnel, DefinitionError> {
        let t = self.table(fv, "a [[funnel]]")?;
        // Keys are read in file order; `steps` and `exclude` after the others (they need `mode`). Of all
        // the mistakes found, the first in the file is reported.
        let mut first = FirstError::default();
        let mut id = None;
        let mut window = None;
        let mut mode = Mode::Ordered;
        let mut steps_v = None;
        let mut exclude_v = None;
        let mut breakdown = None;
        for (key, span, v) in entries(t) {
            let read = (|| {
                match key {
                    "id" => id = Some(self.string(v, "id")?),
                    "window" => window = Some(self.window(v)?),
                    "mode" => mode = self.mode(v)?,
                    "steps" => steps_v = Some(v),
                    "exclude" => exclude_v = Some(v),
                    "breakdown" => breakdown = Some((self.string(v, "breakdown")?, v.span())),
                    _ => {
                        return Err(self.unknown(
                            key,
                            span,
                            &["id", "window", "mode", "steps", "exclude", "breakdown"],
                        ))
                    }
                }
                Ok(())
            })();
            if first.note(read).is_none() {
                // Later keys come after this mistake in the file.
                break;
            }
        }
        let mut steps = Vec::new();
        match steps_v.map(|v| (v, v.get_ref())) {
            Some((v, DeValue::Array(items))) if items.is_empty() || items.len() > MAX_STEPS => {
                first.push(self.err(v.span(), format!("a funnel has 1 to {MAX_STEPS} steps")))
            }
            Some((_, DeValue::Array(items))) => {
                for sv in items.iter() {
                    let step = self.matcher(sv, source, columns, false);
                    let Some((name, description, matcher, _)) = first.note(step) else {
                        break;
                    };
                    steps.push(Step {
                        name,
                        description,
                        matcher,
                    });
                }
            }
            Some((v, _)) => {
                first.push(self.err(v.span(), "`steps` must be an array of step tables"))
            }
            None => {}
        }
        let n = steps.len();
        let mut exclusions = Vec::new();
        if let Some(ev) = exclude_v {
            match ev.get_ref() {
                DeValue::Array(items) => {
                    for xv in items.iter() {
                        let exclusion = self.exclusion(xv, source, columns, mode, n);
                        let Some(x) = first.note(exclusion) else {
                            break;
                        };
                        exclusions.push(x);
                    }
                }
                _ => first.push(self.err(ev.span(), "`exclude` must be an array of step tables")),
            }
        }
        let breakdown = match breakdown {
            None => None,
            Some((path, span)) => {
                let field = |table: Table, columns: &mut Columns| match path.split_once('.') {
                    Some((m, k)) if !m.is_empty() && !k.is_empty() => Some(Field::Property {
                        map: columns.intern(table, m),
                        key: k.to_string(),
                    }),
                    None => Some(Field::Column(columns.intern(table, &path))),
                    Some(_) => None,
                };
                match (
                    field(Table::Events, columns),
                    field(Table::Conversions, columns),
                ) {
                    (Some(e), Some(c)) => Some([e, c]),
                    _ => {
                        first.push(self.err(span, "breakdown is `column` or `map_column.key`"));
                        None
                    }
                }
            }
        };
        if let Some(e) = first.0 {
            return Err(e);
        }
        // A missing key is reported at the start of the funnel's table (once nothing in it is wrong: a
        // key after the first mistake was not read).
        let id = id.ok_or_else(|| self.err(fv.span(), "a funnel needs an `id`"))?;
        let window_s = window.ok_or_else(|| {
            self.err(
                fv.span(),
                format!("funnel `{id}` needs a `window`, e.g. window = \"7d\""),
            )
        })?;
        if steps_v.is_none() {
            return Err(self.err(fv.span(), format!("funnel `{id}` needs `steps`")));
        }
        let mut f = Funnel {
            id,
            version: String::new(),
            steps,
            window_s,
            mode,
            exclusions,
            breakdown,
        };
        f.version = version_of(&f, source);
        Ok(f)
    }

    fn mode(&self, v: &Spanned<DeValue<'_>>) -> Result<Mode, DefinitionError> {
        match self.string(v, "mode")?.as_str() {
            "ordered" => Ok(Mode::Ordered),
            "strict_order" => Ok(Mode::StrictOrder),
            "unordered" => Ok(Mode::Unordered),
            other => Err(self.err(
                v.span(),
                format!("unknown mode `{other}` (use ordered, strict_order or unordered)"),
            )),
        }
    }

    /// An exclusion table of a funnel with `steps` steps.
    fn exclusion(
        &self,
        xv: &Spanned<DeValue<'_>>,
        source: &Source,
        columns: &mut Columns,
        mode: Mode,
        steps: usize,
    ) -> Result<Exclusion, DefinitionError> {
        let (name, description, matcher, between) = self.matcher(xv, source, columns, true)?;
        let between = match between {
            Some((_, _, span)) if mode == Mode::Unordered => {
                return Err(self.err(span, "`between` is not supported in unordered funnels"))
            }
            Some((from, to, span)) if !(1 <= from && from < to && to <= steps) => {
                return Err(self.err(
                    span,
                    format!("`between` must be [from, to] with 1 <= from < to <= {steps}"),
                ))
            }
            Some((from, to, _)) => (from, to),
            None => (1, steps),
        };
        Ok(Exclusion {
            name: name.unwrap_or(description),
            matcher,
            between,
        })
    }

    /// A step or exclusion table: `{ name?, event? | hit?, where?, between? }` → its name, its
    /// description ([`Step::description`]), its matcher and its `between`.
    #[allow(clippy::type_complexity)]
    fn matcher(
        &self,
        v: &Spanned<DeValue<'_>>,
        source: &Source,
        columns: &mut Columns,
        exclusion: bool,
    ) -> Result<
        (
            Option<String>,
            String,
            Matcher,
            Option<(usize, usize, Range<usize>)>,
        ),
        DefinitionError,
    > {
        let t = self.table(v, if exclusion { "an exclusion" } else { "a step" })?;
        let mut first = FirstError::default();
        let mut name = None;
        let mut table = None;
        let mut base = Predicate::True;
        let mut where_v = None;
        let mut between = None;
        let mut label = None;
        for (key, span, kv) in entries(t) {
            let read = (|| {
                match key {
                    "name" => name = Some(self.string(kv, "name")?),
                    "event" | "hit" if table.is_some() => {
                        return Err(
                            self.err(span, "a step matches either `event` or `hit`, not both")
                        )
                    }
                    "event" => {
                        table = Some(Table::Events);
                        let (p, names) = self.event(kv, source, columns)?;
                        label = Some(names);
                        base = std::mem::replace(&mut base, Predicate::True).and(p);
                    }
                    "hit" => {
                        table = Some(Table::Conversions);
                        let p = self.hit(kv, columns)?;
                        label = Some(match &p {
                            Predicate::True => "hit".to_string(),
                            p => format!("hit {p}"),
                        });
                        base = std::mem::replace(&mut base, Predicate::True).and(p);
                    }
                    "where" => where_v = Some(kv),
                    "between" if exclusion => between = Some(self.between(kv)?),
                    _ => {
                        let allowed: &[&str] = if exclusion {
                            &["name", "event", "hit", "where", "between"]
                        } else {
                            &["name", "event", "hit", "where"]
                        };
                        return Err(self.unknown(key, span, allowed));
                    }
                }
                Ok(())
            })();
            if first.note(read).is_none() {
                // Later keys come after this mistake in the file.
                break;
            }
        }
        let table = table.unwrap_or(Table::Events);
        let mut description = label.unwrap_or_else(|| "any event".into());
        if let Some(wv) = where_v {
            let parsed = WhereParser {
                text: self.text,
                origin: self.origin,
                columns,
                table,
            }
            .parse(wv);
            if let Some(p) = first.note(parsed) {
                description = format!("{description} where {p}");
                base = base.and(p);
            }
        }
        if let Some(e) = first.0 {
            return Err(e);
        }
        if base == Predicate::True && table == Table::Events {
            return Err(self.err(
                v.span(),
                "this matches every event: give it `event = \"name\"`, `hit = ...` or a `where` condition",
            ));
        }
        Ok((
            name,
            description,
            Matcher {
                table,
                predicate: base,
            },
            between,
        ))
    }

    /// `event = "name"` or `event = ["a", "b"]` → the condition on the name column, and the names for
    /// people (`a | b`).
    fn event(
        &self,
        kv: &Spanned<DeValue<'_>>,
        source: &Source,
        columns: &mut Columns,
    ) -> Result<(Predicate, String), DefinitionError> {
        let col_name = source.events.name.clone().unwrap_or_else(|| "name".into());
        let col = columns.intern(Table::Events, &col_name);
        let wp = WhereParser {
            text: self.text,
            origin: self.origin,
            columns,
            table: Table::Events,
        };
        let (op, names) = match kv.get_ref() {
            DeValue::Array(items) if !items.is_empty() => {
                let lits = items
                    .iter()
                    .map(|i| wp.literal(i))
                    .collect::<Result<Vec<_>, _>>()?;
                let names = lits
                    .iter()
                    .map(Literal::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ");
                (Op::In(lits), names)
            }
            DeValue::String(s) if !s.is_empty() => {
                (Op::Eq(Literal::Str(s.to_string())), s.to_string())
            }
            _ => {
                return Err(self.err(
                    kv.span(),
                    "`event` is an event name or a list of names, e.g. event = \"install\"",
                ))
            }
        };
        Ok((Predicate::Cmp(Field::Column(col), op), names))
    }

    /// `hit = true` or `hit = { <conditions on the conversions table> }`.
    fn hit(
        &self,
        kv: &Spanned<DeValue<'_>>,
        columns: &mut Columns,
    ) -> Result<Predicate, DefinitionError> {
        match kv.get_ref() {
            DeValue::Boolean(true) => Ok(Predicate::True),
            DeValue::Table(_) => WhereParser {
                text: self.text,
                origin: self.origin,
                columns,
                table: Table::Conversions,
            }
            .parse(kv),
            _ => Err(self.err(
                kv.span(),
                "`hit` is `true` (any attributed hit) or conditions on the conversions table, e.g. hit = { tracker = \"fb\" }",
            )),
        }
    }

    /// An exclusion's `between = [from, to]`.
    fn between(
        &self,
        kv: &Spanned<DeValue<'_>>,
    ) -> Result<(usize, usize, Range<usize>), DefinitionError> {
        let bad = || self.err(kv.span(), "`between` is [from, to], 1-based step numbers");
        let DeValue::Array(items) = kv.get_ref() else {
            return Err(bad());
        };
        let nums: Vec<usize> = items
            .iter()
            .map(|i| match i.get_ref() {
                DeValue::Integer(n) => n.as_str().parse::<usize>().ok(),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let [from, to] = nums[..] else {
            return Err(bad());
        };
        Ok((from, to, kv.span()))
    }
}

/// The version of a funnel: the first 16 hex digits of SHA-256 over its canonical JSON form
/// (steps, window, mode, exclusions, breakdown, the source columns it reads, the semantics
/// revision). Display names do not change the version.
fn version_of(f: &Funnel, source: &Source) -> String {
    let table_json = |t: &TableSource| json!({"table": t.table, "app": t.app, "actor": t.actor, "time": t.time, "name": t.name});
    let canonical = json!({
        "semantics": SEMANTICS,
        "source": {"events": table_json(&source.events), "conversions": table_json(&source.conversions)},
        "mode": f.mode.name(),
        "window_s": f.window_s,
        "steps": f.steps.iter().map(|s| s.matcher.to_json()).collect::<Vec<_>>(),
        "exclude": f.exclusions.iter().map(|x| json!({"match": x.matcher.to_json(), "between": [x.between.0, x.between.1]})).collect::<Vec<_>>(),
        "breakdown": f.breakdown.as_ref().map(|b| b[0].display()),
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[funnel]]
id = "link_to_purchase"
window = "7d"
breakdown = "props.country"
steps = [
  { hit = { tracker = "fb" } },
  { event = "install" },
  { event = "signup" },
  { name = "paid", event = "purchase", where = { "props.plan" = { in = ["pro", "team"] } } },
]
exclude = [ { event = "uninstall", between = [2, 4] } ]

[[funnel]]
id = "onboarding"
window = 3600
mode = "strict_order"
steps = [ { event = "install" }, { event = ["signup", "login"] } ]
"#;

    #[test]
    fn parses_the_documented_example() {
        let set = FunnelSet::parse(EXAMPLE, "f.toml").unwrap();
        assert_eq!(set.funnels.len(), 2);
        let f = &set.funnels[0];
        assert_eq!(f.window_s, 7 * 86_400);
        assert_eq!(f.mode, Mode::Ordered);
        assert_eq!(f.steps.len(), 4);
        assert_eq!(f.steps[0].matcher.table, Table::Conversions);
        assert_eq!(f.steps[0].label(), "hit tracker = fb");
        assert_eq!(f.steps[1].label(), "install");
        assert_eq!(f.steps[3].name.as_deref(), Some("paid"));
        assert_eq!(f.steps[3].label(), "paid");
        assert_eq!(
            f.steps[3].description,
            "purchase where props.plan in (pro, team)"
        );
        assert_eq!(f.exclusions[0].name, "uninstall");
        assert_eq!(f.exclusions[0].between, (2, 4));
        assert!(f.breakdown.is_some());
        assert_eq!(f.version.len(), 16);
        let g = &set.funnels[1];
        assert_eq!((g.window_s, g.mode), (3600, Mode::StrictOrder));
        assert_eq!(g.steps[1].label(), "signup | login");
        assert!(set.columns(Table::Events).contains(&"name".to_string()));
        assert!(set
            .columns(Table::Conversions)
            .contains(&"tracker".to_string()));
    }

    #[test]
    fn version_is_stable_and_changes_with_the_definition_only() {
        let a = FunnelSet::parse(EXAMPLE, "a").unwrap();
        // Pinned: the hash must not change across runs, platforms or Rust versions.
        let pinned = a.funnels[1].version.clone();
        let again = FunnelSet::parse(EXAMPLE, "b").unwrap();
        assert_eq!(again.funnels[1].version, pinned);
        let renamed = EXAMPLE.replace(
            "{ event = \"install\" }, { event = [",
            "{ name = \"x\", event = \"install\" }, { event = [",
        );
        assert_eq!(
            FunnelSet::parse(&renamed, "c").unwrap().funnels[1].version,
            pinned
        );
        let rewindowed = EXAMPLE.replace("window = 3600", "window = \"2h\"");
        assert_ne!(
            FunnelSet::parse(&rewindowed, "d").unwrap().funnels[1].version,
            pinned
        );
        assert_ne!(a.funnels[0].version, pinned);
    }

    #[test]
    fn version_hash_is_pinned() {
        let set = FunnelSet::parse(
            "[[funnel]]\nid = \"f\"\nwindow = 60\nsteps = [ { event = \"a\" }, { event = \"b\" } ]\n",
            "p",
        )
        .unwrap();
        // Computed once from the canonical JSON; a change here means every stored fact gets
        // a new version, which must be deliberate (bump SEMANTICS instead of editing by hand).
        let canonical = serde_json::json!({
            "semantics": 1,
            "source": {
                "events": {"table": "tracking.events", "app": "app_id", "actor": "actor_id", "time": "ts", "name": "name"},
                "conversions": {"table": "tracking.conversions", "app": "app_id", "actor": "actor_id", "time": "hit_ts", "name": null}
            },
            "mode": "ordered", "window_s": 60,
            "steps": [
                {"table": "events", "where": {"column": "name", "op": ["=", "a"]}},
                {"table": "events", "where": {"column": "name", "op": ["=", "b"]}}
            ],
            "exclude": [], "breakdown": null
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        let want: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(set.funnels[0].version, want);
        assert_eq!(set.funnels[0].version, "d079ad822d225c85");
    }

    fn err(src: &str) -> DefinitionError {
        FunnelSet::parse(src, "bad.toml").unwrap_err()
    }

    #[test]
    fn bad_definitions_name_line_and_column() {
        let e =
            err("[[funnel]]\nid = \"x\"\nwindow = \"7 parsecs\"\nsteps = [ { event = \"a\" } ]\n");
        assert_eq!((e.line, e.column), (3, 10), "{e}");
        assert!(e.message.contains("window"), "{e}");

        let e = err("[[funnel]]\nid = \"x\"\nwindow = 60\nmode = \"sideways\"\nsteps = [ { event = \"a\" } ]\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("sideways"), "{e}");

        let e = err("[[funnel]]\nid = \"x\"\nwindow = 60\nsteps = [ { evnt = \"a\" } ]\n");
        assert_eq!((e.line, e.column), (4, 13), "{e}");
        assert!(e.message.contains("evnt"), "{e}");

        let e = err("[[funnel]]\nid = \"x\"\nwindow = 60\nsteps = [ { event = \"a\" } ]\n[[funnel]]\nid = \"x\"\nwindow = 60\nsteps = [ { event = \"b\" } ]\n");
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("duplicate"), "{e}");

        let e = err("[[funnel]]\nid = \"x\"\nwindow = 60\nsteps = [ { event = \"a\" } ]\nexclude = [ { event = \"u\", between = [1, 1] } ]\n");
        assert_eq!(e.line, 5, "{e}");

        let e = err("[[funnel]]\nid = \"x\"\nwindow = 60\nsteps = [ { where = { } } ]\n");
        assert!(e.message.contains("every event"), "{e}");

        let e = err("[[funnel]\n");
        assert_eq!(e.line, 1, "{e}");
        let e = err("");
        assert!(e.message.contains("no funnels"), "{e}");
        let e = err("[[funnel]]\nwindow = 60\nsteps = [ { event = \"a\" } ]\n");
        assert!(e.message.contains("id"), "{e}");
        assert!(e.to_string().starts_with("bad.toml:"), "{e}");
    }

    #[test]
    fn the_first_mistake_in_the_file_is_reported() {
        // Funnel keys written above the [[funnel]] header: `id` at 1:1 comes first in the file, whatever
        // order the parsed table keeps its keys in.
        let e = err("id = \"signup\"\nwindow = \"7d\"\nmode = \"ordered\"\nbreakdown = \"props.os\"\n[[funnel]]\nsteps = [ { event = \"a\" } ]\n");
        assert_eq!((e.line, e.column), (1, 1), "{e}");
        assert!(e.message.contains("unknown key `id`"), "{e}");
        // Inside a funnel: a bad step (line 2) before an unknown key (line 3) …
        let e = err(
            "[[funnel]]\nsteps = [ { evnt = \"a\" } ]\nbreakdwn = \"x\"\nid = \"f\"\nwindow = 60\n",
        );
        assert_eq!((e.line, e.column), (2, 13), "{e}");
        // … a bad `where` (line 2) before a bad mode (line 3), and a [source] mistake after a funnel's.
        let e = err("[[funnel]]\nsteps = [ { event = \"a\", where = 5 } ]\nmode = \"x\"\nid = \"f\"\nwindow = 60\n");
        assert_eq!(e.line, 2, "{e}");
        let e = err("[[funnel]]\nid = \"f\"\nwindow = \"soon\"\nsteps = [ { event = \"a\" } ]\n[source]\nevents = { tabel = \"t\" }\n");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn levels_are_labelled_by_step_or_by_distinct_steps_in_unordered_funnels() {
        let set = FunnelSet::parse(
            "[[funnel]]\nid = \"o\"\nwindow = 60\nsteps = [ { event = \"a\" }, { hit = true }, { where = { \"props.x\" = \"1\" } } ]\n\
             [[funnel]]\nid = \"u\"\nwindow = 60\nmode = \"unordered\"\nsteps = [ { event = \"a\" }, { event = \"b\" }, { event = \"c\" } ]\n",
            "l",
        )
        .unwrap();
        assert_eq!(
            set.funnels[0].level_labels(),
            ["a", "hit", "any event where props.x = 1"]
        );
        assert_eq!(
            set.funnels[1].level_labels(),
            ["≥ 1 step", "≥ 2 steps", "≥ 3 steps"]
        );
    }

    #[test]
    fn source_mapping_overrides_defaults() {
        let set = FunnelSet::parse(
            "[source]\nevents = { table = \"ks.app_events\", actor = \"user_id\", time = \"at\", name = \"kind\" }\n[[funnel]]\nid = \"f\"\nwindow = \"1h\"\nsteps = [ { event = \"a\" } ]\n",
            "s",
        )
        .unwrap();
        assert_eq!(set.source.events.table, "ks.app_events");
        assert_eq!(set.source.events.actor, "user_id");
        assert_eq!(set.source.conversions, Source::default().conversions);
        assert_eq!(set.columns(Table::Events), ["kind".to_string()]);
    }
}
