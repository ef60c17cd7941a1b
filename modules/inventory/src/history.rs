//! Dated postings: a move takes its place in its item's ledger by date, and every later
//! line of that item is valued again (ADR 024).
//!
//! Each ledger line carries `seq`, the item's posting sequence: the order in which its
//! running balances (`qty_after`, `value_after`, `rate_after`) were computed, so the
//! ledger ordered by `seq` replays exactly. Lines are ordered by date and, within a
//! date, by when they were posted. A move dated before some line of its item (a
//! back-dated move) takes the `seq` after the last line on or before its date; the later
//! lines move up and are replayed from the positions before them:
//! - a receipt or a positive adjustment keeps its quantity, rate and value;
//! - an issue, a negative adjustment or a transfer's outgoing side goes out at the
//!   running rate of its own date, so its value may change;
//! - a transfer's incoming side brings exactly what its outgoing side took.
//!
//! A back-dated move that would leave any location short on any later line is refused,
//! naming the move it would break; one that changes the value of a later move emits an
//! `inventory.stock_moved` of kind `revaluation` for the difference, so Accounting posts
//! it at that move's date. All of it in the request's transaction, under the item's
//! lock: a move of the item never sees another half-done.

use std::collections::BTreeMap;

use eerp_sdk::decimal::fixed;
use eerp_sdk::{
    Ctx, Decimal, Error, Filter, FilterOp, ListQuery, Order, Page, Row, Table, abi::data::MAX_PAGE,
};
use serde::Deserialize;
use serde_json::json;

use crate::moves::{LEDGER, LedgerLine, MOVES, Move, StoredLayer};
use crate::valuation::{Change, Position, QTY_SCALE, RATE_SCALE, VALUE_SCALE};

/// Most later lines one back-dated move may value again. A move that would touch more
/// is refused with a problem saying so: beyond this, one request's fuel and time would
/// run out part way (a later issue posts an adjustment at today's date instead).
pub const MAX_REPOST: usize = 2000;

/// How a ledger line moves stock, which decides how it is valued again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// In at its own rate and value (a receipt, a positive adjustment).
    In,
    /// Out at the running rate (an issue, a negative adjustment, a transfer's source).
    Out,
    /// In with exactly the value its move's `Out` line took (a transfer's destination).
    TransferIn,
    /// A cancellation: the exact opposite of its move's line at the same location, which
    /// it directly follows, leaving the position as it was before that move.
    Reverse,
    /// A cancelled move's line: its stored change, as it was, neither valued again nor
    /// checked, since its cancellation right after it undoes it.
    Cancelled,
    /// A stock count: whatever difference to `counted` is left at its place, in at
    /// `rate` (default: the running rate) or out at the running rate.
    Count {
        /// The quantity counted.
        counted: Decimal,
        /// The rate a surplus comes in at, when the count named one.
        rate: Option<Decimal>,
    },
}

/// A later line as the replay reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// The location it moved stock at.
    pub location: String,
    /// Its move.
    pub move_id: String,
    /// How it moves stock.
    pub flow: Flow,
    /// Quantity, signed (in > 0).
    pub qty: Decimal,
    /// The rate it moved at.
    pub rate: Decimal,
    /// The value it moved, signed like `qty`.
    pub value: Decimal,
    /// The move a cancellation undoes.
    pub reverses: Option<String>,
}

/// A line valued again: its change and the position it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// What it moves now.
    pub change: Change,
    /// Its location's position after it.
    pub after: Position,
}

/// A later line that would take more out than its location would hold then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken {
    /// Its index among the lines replayed.
    pub index: usize,
    /// What its location would hold just before it.
    pub on_hand: Decimal,
}

/// Values `lines` again, in order, from `positions` (one per location they touch,
/// updated in place to the positions after the last line).
///
/// # Errors
/// [`Broken`] for the first line that would take a location below zero (a count never
/// does: it takes what it finds).
pub fn replay(
    positions: &mut BTreeMap<String, Position>,
    lines: &[Posted],
) -> Result<Vec<Replayed>, Broken> {
    // What each transfer's outgoing side took: (value, rate), for its incoming side.
    let mut outgoing: BTreeMap<&str, (Decimal, Decimal)> = BTreeMap::new();
    // Each line's position before it and its change, by (move, location): what a
    // cancellation undoes.
    let mut undo: BTreeMap<(&str, &str), (Position, Change)> = BTreeMap::new();
    let mut replayed = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let before = positions.get(&line.location).cloned().unwrap_or_default();
        let (after, change) = match line.flow {
            Flow::In => before.receive_valued(line.qty, line.rate, line.value),
            Flow::TransferIn => {
                let (value, rate) = outgoing
                    .get(line.move_id.as_str())
                    .map_or((line.value, line.rate), |(value, rate)| (-*value, *rate));
                before.receive_valued(line.qty, rate, value)
            }
            Flow::Out => {
                let (after, change) =
                    before.issue(-line.qty, Decimal::ZERO).map_err(|_| Broken {
                        index,
                        on_hand: before.on_hand,
                    })?;
                outgoing.insert(&line.move_id, (change.value, change.rate));
                (after, change)
            }
            Flow::Count { counted, rate } => before.count(counted, rate).map_err(|_| Broken {
                index,
                on_hand: before.on_hand,
            })?,
            Flow::Cancelled => (before.moved(line.qty, line.value), stored(line)),
            Flow::Reverse => {
                let undone = line
                    .reverses
                    .as_deref()
                    .and_then(|m| undo.get(&(m, line.location.as_str())));
                match undone {
                    Some((was, change)) => (was.clone(), change.opposite()),
                    // Its move is before the replay: it keeps what it stored.
                    None => (before.moved(line.qty, line.value), stored(line)),
                }
            }
        };
        undo.insert(
            (line.move_id.as_str(), line.location.as_str()),
            (before.clone(), change),
        );
        positions.insert(line.location.clone(), after.clone());
        replayed.push(Replayed { change, after });
    }
    Ok(replayed)
}

/// The change `line` stored.
fn stored(line: &Posted) -> Change {
    Change {
        qty: line.qty,
        value: line.value,
        rate: line.rate,
    }
}

/// Where a move dated `date` goes in its item's ledger, and the lines after it.
#[derive(Debug, Default)]
pub struct Slot {
    /// The `seq` of the last line on or before the date (0 for none).
    pub after_seq: i64,
    /// The item's lines dated after it, in `seq` order.
    pub later: Vec<Row<LedgerLine>>,
}

impl Slot {
    /// Whether the move goes before some existing line.
    pub fn is_back_dated(&self) -> bool {
        !self.later.is_empty()
    }
}

fn seq_of(line: &Row<LedgerLine>) -> i64 {
    line.record.seq.unwrap_or_default()
}

/// The newest line of `filter`, by `seq`.
fn last_line(ctx: &mut Ctx, filter: Vec<Filter>) -> Result<Option<Row<LedgerLine>>, Error> {
    let page = LEDGER.list(
        ctx,
        ListQuery {
            filter,
            order: Some(Order {
                column: "seq".into(),
                desc: true,
            }),
            limit: Some(1),
            ..ListQuery::default()
        },
    )?;
    Ok(page.data.into_iter().next())
}

/// Where an item's ledger ends, kept on the item row (which every move locks), so a
/// move dated on or after it finds its place without reading the ledger.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct End {
    /// The item's last `seq`; `None` until its first move under this version.
    pub last_seq: Option<i64>,
    /// The latest date on its ledger.
    pub last_date: Option<String>,
}

/// The items table, as the ends of their ledgers.
const ENDS: Table<Row<End>> = Table::new("items");

impl End {
    /// Its last `seq` and date; the first time, read from the ledger (numbering the lines
    /// of an older Inventory) and kept on the item.
    ///
    /// # Errors
    /// When the data API fails.
    pub fn resolve(self, ctx: &mut Ctx, item_id: &str) -> Result<Known, Error> {
        if let Some(seq) = self.last_seq {
            return Ok(Known {
                seq,
                date: self.last_date,
            });
        }
        let last = ensure_numbered(ctx, item_id)?;
        let known = Known {
            seq: last.as_ref().map_or(0, seq_of),
            date: last.map(|l| l.record.date),
        };
        known.keep(ctx, item_id)?;
        Ok(known)
    }
}

/// An item's last `seq` and date, as read or as a move leaves them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The last `seq` (0: no line).
    pub seq: i64,
    /// The latest date.
    pub date: Option<String>,
}

impl Known {
    /// After `lines` more lines, the latest dated `date`.
    pub fn after(&self, lines: usize, date: &str) -> Known {
        let latest = match &self.date {
            Some(last) if last.as_str() > date => last.clone(),
            _ => date.to_string(),
        };
        Known {
            seq: self.seq + i64::try_from(lines).unwrap_or(i64::MAX),
            date: Some(latest),
        }
    }

    /// Writes it to the item row.
    ///
    /// # Errors
    /// When the data API fails.
    pub fn keep(&self, ctx: &mut Ctx, item_id: &str) -> Result<(), Error> {
        ENDS.update(
            ctx,
            item_id,
            &json!({"last_seq": self.seq, "last_date": self.date}),
        )?;
        Ok(())
    }
}

/// Finds the slot of a move of `item_id` dated `date`, its ledger ending at `end`. The
/// caller holds the item's lock.
///
/// # Errors
/// When the data API fails, or more than [`MAX_REPOST`] lines would move.
pub fn slot(ctx: &mut Ctx, item_id: &str, date: &str, end: &Known) -> Result<Slot, Error> {
    let item = || Filter::eq("item_id", item_id);
    if end.date.as_deref().is_none_or(|last| last <= date) {
        return Ok(Slot {
            after_seq: end.seq,
            later: Vec::new(),
        });
    }
    let on_or_before = last_line(ctx, vec![item(), Filter::new("date", FilterOp::Lte, date)])?;
    let after_seq = on_or_before.as_ref().map_or(0, seq_of);
    let later = lines_after(ctx, item_id, after_seq, &format!("a move dated {date}"))?;
    Ok(Slot { after_seq, later })
}

/// The item's lines after `seq`, in order; at most [`MAX_REPOST`] (`what` would change
/// them: it names the refusal).
///
/// # Errors
/// When the data API fails, or more than [`MAX_REPOST`] lines follow.
pub fn lines_after(
    ctx: &mut Ctx,
    item_id: &str,
    seq: i64,
    what: &str,
) -> Result<Vec<Row<LedgerLine>>, Error> {
    let mut later = Vec::new();
    let mut cursor = None;
    loop {
        let page: Page<Row<LedgerLine>> = LEDGER.list(
            ctx,
            ListQuery {
                filter: vec![
                    Filter::eq("item_id", item_id),
                    Filter::new("seq", FilterOp::Gt, seq),
                ],
                order: Some(Order {
                    column: "seq".into(),
                    desc: false,
                }),
                limit: Some(MAX_PAGE),
                cursor,
                ..ListQuery::default()
            },
        )?;
        later.extend(page.data);
        if later.len() > MAX_REPOST {
            return Err(Error::conflict(format!(
                "{what} would value again more than {MAX_REPOST} later ledger lines of this \
                 item, more than one request may; post a correcting adjustment today instead"
            ))
            .with_code("too_many_later_moves"));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(later),
        }
    }
}

/// The item's newest line, once every line of it has a `seq`.
///
/// # Errors
/// When the data API fails.
fn ensure_numbered(ctx: &mut Ctx, item_id: &str) -> Result<Option<Row<LedgerLine>>, Error> {
    let item = || vec![Filter::eq("item_id", item_id)];
    let last = last_line(ctx, item())?;
    // Descending order puts lines without a `seq` last: when the newest has none, none
    // has one yet (they were posted by an older Inventory).
    if last.as_ref().is_none_or(|line| line.record.seq.is_some()) {
        return Ok(last);
    }
    number_unnumbered(ctx, item_id)?;
    last_line(ctx, item())
}

/// Gives the item's lines, all posted before ledger lines had a `seq` (an older
/// Inventory), one: by date, then in the order they were created, a transfer's
/// outgoing line before its incoming one. Their running figures were computed in the
/// order their transactions committed, which the old ledger did not record; this is
/// the nearest order to it that dated postings can keep from then on.
fn number_unnumbered(ctx: &mut Ctx, item_id: &str) -> Result<(), Error> {
    let mut lines = Vec::new();
    let mut cursor = None;
    loop {
        let page = LEDGER.list(
            ctx,
            ListQuery {
                filter: vec![
                    Filter::eq("item_id", item_id),
                    Filter::new("seq", FilterOp::IsNull, true),
                ],
                limit: Some(MAX_PAGE),
                cursor,
                ..ListQuery::default()
            },
        )?;
        lines.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    lines.sort_by(|a, b| {
        let key = |l: &Row<LedgerLine>| {
            let incoming = !l.record.qty_change.starts_with('-');
            (
                l.record.date.clone(),
                l.created_at.clone(),
                l.record.move_id.clone(),
                incoming,
            )
        };
        key(a).cmp(&key(b))
    });
    for (n, line) in lines.iter().enumerate() {
        let l = &line.record;
        let qty_after = read("qty_after", &l.qty_after)?;
        let value_after = read("value_after", &l.value_after)?;
        let rate_after = if qty_after > Decimal::ZERO {
            value_after / qty_after
        } else {
            Decimal::ZERO
        };
        let seq = i64::try_from(n + 1).unwrap_or(i64::MAX);
        LEDGER.update(
            ctx,
            &line.id,
            &json!({"seq": seq, "rate_after": fixed(rate_after, RATE_SCALE)}),
        )?;
    }
    Ok(())
}

/// The position `line` left its location in; `fifo` says whether its item is FIFO.
fn position_after(line: &LedgerLine, fifo: bool) -> Result<Position, Error> {
    Ok(Position {
        on_hand: read("qty_after", &line.qty_after)?,
        reserved: Decimal::ZERO,
        rate: read("rate_after", line.rate_after.as_deref().unwrap_or("0"))?,
        value: read("value_after", &line.value_after)?,
        layers: StoredLayer::read(line.layers.as_deref(), fifo)?,
    })
}

/// The position of `item_id` at `location_id` after the line `seq` of the item (none:
/// empty).
///
/// # Errors
/// When the data API fails or a stored figure is not a decimal.
pub fn position_at(
    ctx: &mut Ctx,
    item_id: &str,
    location_id: &str,
    seq: i64,
    fifo: bool,
) -> Result<Position, Error> {
    let filter = vec![
        Filter::eq("item_id", item_id),
        Filter::eq("location_id", location_id),
        Filter::new("seq", FilterOp::Lte, seq),
    ];
    match last_line(ctx, filter)? {
        Some(line) => position_after(&line.record, fifo),
        None => Ok(Position {
            layers: fifo.then(Vec::new),
            ..Position::default()
        }),
    }
}

/// Reads a stored decimal; a bad one is an internal error, never a silent 0.
pub fn read(field: &str, text: &str) -> Result<Decimal, Error> {
    text.parse()
        .map_err(|_| Error::internal(format!("stored {field} `{text}` is not a decimal")))
}

/// The moves of `lines`, by id.
pub fn moves_of(
    ctx: &mut Ctx,
    lines: &[Row<LedgerLine>],
) -> Result<BTreeMap<String, Row<Move>>, Error> {
    let mut ids: Vec<&str> = lines.iter().map(|l| l.record.move_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut moves = BTreeMap::new();
    for chunk in ids.chunks(100) {
        let page = MOVES.list(
            ctx,
            ListQuery {
                filter: vec![Filter::new("id", FilterOp::In, json!(chunk))],
                limit: Some(MAX_PAGE),
                ..ListQuery::default()
            },
        )?;
        moves.extend(page.data.into_iter().map(|m| (m.id.clone(), m)));
    }
    Ok(moves)
}

/// How the line `line` of move `m` moves stock.
///
/// # Errors
/// When a stored figure is not a decimal.
pub fn flow(m: &Move, line: &LedgerLine) -> Result<Flow, Error> {
    if m.reverses.is_some() {
        return Ok(Flow::Reverse);
    }
    if m.cancelled_by.is_some() {
        return Ok(Flow::Cancelled);
    }
    if let Some(counted) = &m.counted {
        let rate = m.count_rate.as_deref().map(|r| read("count_rate", r));
        return Ok(Flow::Count {
            counted: read("counted", counted)?,
            rate: rate.transpose()?,
        });
    }
    let incoming = !line.qty_change.starts_with('-');
    Ok(match (m.kind.as_str(), incoming) {
        ("transfer", true) => Flow::TransferIn,
        (_, true) => Flow::In,
        (_, false) => Flow::Out,
    })
}

/// The replay's view of a stored later line.
///
/// # Errors
/// When a stored figure is not a decimal.
pub fn posted(m: &Move, line: &Row<LedgerLine>) -> Result<Posted, Error> {
    let l = &line.record;
    Ok(Posted {
        location: l.location_id.clone(),
        move_id: l.move_id.clone(),
        flow: flow(m, l)?,
        qty: read("qty_change", &l.qty_change)?,
        rate: read("rate", &l.rate)?,
        value: read("value_change", &l.value_change)?,
        reverses: m.reverses.clone(),
    })
}

/// The columns a ledger line stores for `change` leaving `after`, at `seq`.
pub fn line_values(seq: i64, change: &Change, after: &Position) -> serde_json::Value {
    let mut values = json!({
        "seq": seq,
        "qty_change": fixed(change.qty, QTY_SCALE),
        "value_change": fixed(change.value, VALUE_SCALE),
        "rate": fixed(change.rate, RATE_SCALE),
        "qty_after": fixed(after.on_hand, QTY_SCALE),
        "value_after": fixed(after.value, VALUE_SCALE),
        "rate_after": fixed(after.rate, RATE_SCALE),
    });
    if let Some(layers) = StoredLayer::of(after) {
        values["layers"] = json!(layers);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn line(
        location: &str,
        move_id: &str,
        flow: Flow,
        qty: &str,
        rate: &str,
        value: &str,
    ) -> Posted {
        Posted {
            location: location.into(),
            move_id: move_id.into(),
            flow,
            qty: d(qty),
            rate: d(rate),
            value: d(value),
            reverses: None,
        }
    }

    fn at(on_hand: &str, rate: &str, value: &str) -> Position {
        Position {
            on_hand: d(on_hand),
            rate: d(rate),
            value: d(value),
            ..Position::default()
        }
    }

    #[test]
    fn a_later_issue_goes_out_at_the_rate_of_its_own_date() {
        // 10 @ 10 on 12-04; then (back-dated) an issue of 5 on 12-05 leaves 5 @ 10 = 50.
        // Later: 10 @ 30 on 12-07 (15 @ 23.33…, 350.00), an issue of 3 on 12-08, which
        // was 3 × 20 = 60.00 before and is now 3 × 23.3333333333 = 70.00.
        let mut positions = BTreeMap::from([("A".to_string(), at("5", "10", "50"))]);
        let lines = [
            line("A", "r2", Flow::In, "10", "30", "300"),
            line("A", "i2", Flow::Out, "-3", "20", "-60"),
        ];
        let replayed = replay(&mut positions, &lines).unwrap();
        assert_eq!(replayed[0].after.value, d("350"));
        assert_eq!(replayed[0].after.rate, d("23.3333333333"));
        assert_eq!(replayed[1].change.value, d("-70.00"));
        assert_eq!(positions["A"], at("12", "23.3333333333", "280.00"));
    }

    #[test]
    fn a_transfer_brings_what_its_source_now_gives_up() {
        let mut positions = BTreeMap::from([
            ("A".to_string(), at("4", "12.5", "50")),
            ("B".to_string(), Position::default()),
        ]);
        let lines = [
            line("A", "t", Flow::Out, "-2", "10", "-20"),
            line("B", "t", Flow::TransferIn, "2", "10", "20"),
            line("B", "i", Flow::Out, "-1", "10", "-10"),
        ];
        let replayed = replay(&mut positions, &lines).unwrap();
        assert_eq!(replayed[1].change.value, d("25.00"));
        assert_eq!(replayed[2].change.value, d("-12.50"));
        assert_eq!(positions["A"].value + positions["B"].value, d("37.50"));
    }

    #[test]
    fn a_later_count_still_leaves_what_it_counted() {
        // 5 @ 10 at the count's place (a back-dated receipt of 2 before it): the count of
        // 6 now takes 1 out instead of bringing 1 in, and what follows starts from 6.
        let mut positions = BTreeMap::from([("A".to_string(), at("7", "10", "70"))]);
        let count = Flow::Count {
            counted: d("6"),
            rate: None,
        };
        let lines = [
            line("A", "c", count, "1", "10", "10"),
            line("A", "i", Flow::Out, "-6", "10", "-60"),
        ];
        let replayed = replay(&mut positions, &lines).unwrap();
        assert_eq!(
            (replayed[0].change.qty, replayed[0].change.value),
            (d("-1"), d("-10.00"))
        );
        assert_eq!(positions["A"].on_hand, Decimal::ZERO);
    }

    #[test]
    fn a_cancellation_restores_what_was_there_before_its_move() {
        // 10 @ 10, then a receipt of 10 @ 30 (20 @ 20) and its cancellation: 10 @ 10
        // again, exactly; an issue of 4 after it goes out at 10.
        let mut positions = BTreeMap::from([("A".to_string(), at("10", "10", "100"))]);
        let mut cancel = line("A", "x", Flow::Reverse, "-10", "30", "-300");
        cancel.reverses = Some("r".into());
        let lines = [
            line("A", "r", Flow::In, "10", "30", "300"),
            cancel,
            line("A", "i", Flow::Out, "-4", "20", "-80"),
        ];
        let replayed = replay(&mut positions, &lines).unwrap();
        assert_eq!(replayed[1].after, at("10", "10", "100"));
        assert_eq!(replayed[1].change.value, d("-300"));
        assert_eq!(replayed[2].change.value, d("-40.00"));
    }

    #[test]
    fn a_later_line_that_would_go_short_is_named() {
        let mut positions = BTreeMap::from([("A".to_string(), at("5", "10", "50"))]);
        let lines = [
            line("A", "r", Flow::In, "1", "10", "10"),
            line("A", "i", Flow::Out, "-8", "10", "-80"),
        ];
        assert_eq!(
            replay(&mut positions, &lines).unwrap_err(),
            Broken {
                index: 1,
                on_hand: d("6")
            }
        );
    }
}
