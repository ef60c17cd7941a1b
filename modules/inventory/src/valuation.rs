//! Valuation of one item at one location, moving average or FIFO, as plain arithmetic on
//! exact decimals: no data calls, so every rule is unit-tested natively.
//!
//! A [`Position`] is what the balance row holds.
//! - Moving average: a receipt moves the rate to
//!   `(old qty × old rate + in qty × in rate) / new qty`; an issue goes out at it.
//! - FIFO: a receipt adds a layer (quantity at its rate) at the back; an issue consumes
//!   layers from the front, each at its own rate. The position's rate is its value per
//!   unit, for display.
//!
//! Either way an issue's value is rounded to the cent, and the issue that empties the
//! position takes the whole remaining value, so a position with nothing on hand is worth
//! exactly 0 and no rounding remainder is ever left behind.

use eerp_sdk::Decimal;
use eerp_sdk::decimal::round;

/// Decimals of a quantity.
pub const QTY_SCALE: u32 = 6;
/// Decimals of a rate (currency per unit).
pub const RATE_SCALE: u32 = 10;
/// Decimals of a value (cents).
pub const VALUE_SCALE: u32 = 2;

/// What one item holds at one location.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// On hand.
    pub on_hand: Decimal,
    /// Reserved for later issues; never more than on hand.
    pub reserved: Decimal,
    /// Moving-average rate; under FIFO, the value per unit.
    pub rate: Decimal,
    /// Stock value, in cents.
    pub value: Decimal,
    /// FIFO layers, oldest first, their quantities summing to `on_hand`; `None` for
    /// moving average.
    pub layers: Option<Vec<Layer>>,
}

/// A FIFO layer: a quantity still on hand from one receipt, at its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Quantity left of it.
    pub qty: Decimal,
    /// The rate it came in at.
    pub rate: Decimal,
}

/// One change to a position: what the ledger line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Quantity in (positive) or out (negative).
    pub qty: Decimal,
    /// Value in or out, in cents, signed like `qty`.
    pub value: Decimal,
    /// The rate the quantity moved at.
    pub rate: Decimal,
}

impl Change {
    /// The change that undoes this one.
    pub fn opposite(&self) -> Change {
        Change {
            qty: -self.qty,
            value: -self.value,
            rate: self.rate,
        }
    }
}

/// Why stock cannot go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage {
    /// What could be issued.
    pub available: Decimal,
    /// On hand.
    pub on_hand: Decimal,
    /// Reserved by others.
    pub reserved: Decimal,
}

impl Position {
    /// On hand less what is reserved.
    pub fn available(&self) -> Decimal {
        self.on_hand - self.reserved
    }

    /// Receives `qty` (> 0) at `rate`; the value in is `qty × rate` to the cent.
    pub fn receive(&self, qty: Decimal, rate: Decimal) -> (Position, Change) {
        self.receive_valued(qty, rate, round(qty * rate, VALUE_SCALE))
    }

    /// Receives `qty` worth exactly `value` (a transfer brings the value the source
    /// gave up), at `rate` for the average.
    pub fn receive_valued(
        &self,
        qty: Decimal,
        rate: Decimal,
        value: Decimal,
    ) -> (Position, Change) {
        let on_hand = self.on_hand + qty;
        let value_after = self.value + value;
        let layers = self.layers.clone().map(|mut layers| {
            match layers.last_mut() {
                Some(last) if last.rate == rate => last.qty += qty,
                _ => layers.push(Layer { qty, rate }),
            }
            layers
        });
        let rate_after = if self.on_hand <= Decimal::ZERO {
            rate
        } else if layers.is_some() {
            round(value_after / on_hand, RATE_SCALE)
        } else {
            round(
                (self.on_hand * self.rate + qty * rate) / on_hand,
                RATE_SCALE,
            )
        };
        let after = Position {
            on_hand,
            reserved: self.reserved,
            rate: rate_after,
            value: value_after,
            layers,
        };
        (after, Change { qty, value, rate })
    }

    /// Issues `qty` (> 0) at the current rate. `releasing` is the part of a reservation
    /// this issue consumes (0 for an unreserved issue): it is available to this issue
    /// and no longer reserved afterwards.
    ///
    /// # Errors
    /// [`Shortage`] when `qty` exceeds what is available to it.
    pub fn issue(&self, qty: Decimal, releasing: Decimal) -> Result<(Position, Change), Shortage> {
        let available = self.available() + releasing;
        if qty > available {
            return Err(Shortage {
                available,
                on_hand: self.on_hand,
                reserved: self.reserved - releasing,
            });
        }
        let on_hand = self.on_hand - qty;
        let (cost, layers) = match &self.layers {
            Some(layers) => {
                let (cost, left) = consume(layers, qty);
                (cost, Some(left))
            }
            None => (qty * self.rate, None),
        };
        let value = if on_hand.is_zero() {
            self.value
        } else {
            round(cost, VALUE_SCALE).min(self.value)
        };
        let value_after = self.value - value;
        let rate = match layers {
            Some(_) => round(cost / qty, RATE_SCALE),
            None => self.rate,
        };
        let rate_after = match layers {
            Some(_) if !on_hand.is_zero() => round(value_after / on_hand, RATE_SCALE),
            _ => self.rate,
        };
        let after = Position {
            on_hand,
            reserved: self.reserved - releasing,
            rate: rate_after,
            value: value_after,
            layers,
        };
        Ok((
            after,
            Change {
                qty: -qty,
                value: -value,
                rate,
            },
        ))
    }

    /// Sets what is on hand to `counted` (a stock count): the difference comes in at
    /// `rate` (default: the current rate) or goes out as an issue would.
    ///
    /// # Errors
    /// [`Shortage`] when the count leaves less on hand than is reserved.
    pub fn count(
        &self,
        counted: Decimal,
        rate: Option<Decimal>,
    ) -> Result<(Position, Change), Shortage> {
        let difference = counted - self.on_hand;
        if difference > Decimal::ZERO {
            return Ok(self.receive(difference, rate.unwrap_or(self.rate)));
        }
        if difference < Decimal::ZERO {
            return self.issue(-difference, Decimal::ZERO);
        }
        let unchanged = Change {
            qty: Decimal::ZERO,
            value: Decimal::ZERO,
            rate: self.rate,
        };
        Ok((self.clone(), unchanged))
    }

    /// The position with `qty` and `value` (signed) added, its rate and layers as they
    /// are: a stored change applied as it was.
    pub fn moved(&self, qty: Decimal, value: Decimal) -> Position {
        Position {
            on_hand: self.on_hand + qty,
            value: self.value + value,
            ..self.clone()
        }
    }

    /// Reserves `qty` (> 0) of what is available.
    ///
    /// # Errors
    /// [`Shortage`] when less is available.
    pub fn reserve(&self, qty: Decimal) -> Result<Position, Shortage> {
        if qty > self.available() {
            return Err(Shortage {
                available: self.available(),
                on_hand: self.on_hand,
                reserved: self.reserved,
            });
        }
        Ok(Position {
            reserved: self.reserved + qty,
            ..self.clone()
        })
    }

    /// Gives back `qty` of a reservation.
    pub fn release(&self, qty: Decimal) -> Position {
        Position {
            reserved: (self.reserved - qty).max(Decimal::ZERO),
            ..self.clone()
        }
    }
}

/// Takes `qty` from the front of `layers`: the exact cost (unrounded) and the layers
/// left. The caller has checked that they hold `qty`.
fn consume(layers: &[Layer], mut qty: Decimal) -> (Decimal, Vec<Layer>) {
    let mut cost = Decimal::ZERO;
    let mut left = Vec::with_capacity(layers.len());
    for layer in layers {
        let take = layer.qty.min(qty);
        cost += take * layer.rate;
        qty -= take;
        if take < layer.qty {
            left.push(Layer {
                qty: layer.qty - take,
                rate: layer.rate,
            });
        }
    }
    (cost, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn receipts_average_the_rate_and_an_issue_goes_out_at_it() {
        // ERPNext's moving-average test starts the same way.
        let (p, _) = Position::default().receive(d("10"), d("100"));
        let (p, _) = p.receive(d("10"), d("200"));
        assert_eq!((p.on_hand, p.rate, p.value), (d("20"), d("150"), d("3000")));
        let (p, change) = p.issue(d("4"), Decimal::ZERO).unwrap();
        assert_eq!((p.on_hand, p.value), (d("16"), d("2400")));
        assert_eq!(
            (change.qty, change.value, change.rate),
            (d("-4"), d("-600"), d("150"))
        );
    }

    #[test]
    fn running_on_hand_follows_the_ledger() {
        let (p, _) = Position::default().receive(d("10"), d("1"));
        assert_eq!(p.on_hand, d("10"));
        let (p, _) = p.receive(d("5"), d("1"));
        assert_eq!(p.on_hand, d("15"));
        let (p, _) = p.issue(d("3"), Decimal::ZERO).unwrap();
        assert_eq!(p.on_hand, d("12"));
    }

    #[test]
    fn the_issue_that_empties_a_location_takes_the_remaining_cents() {
        let (mut p, _) = Position::default().receive(d("3"), d("33.333333"));
        assert_eq!(p.value, d("100.00"));
        let mut out = Vec::new();
        for _ in 0..3 {
            let (next, change) = p.issue(d("1"), Decimal::ZERO).unwrap();
            out.push(change.value);
            p = next;
        }
        assert_eq!(out, [d("-33.33"), d("-33.33"), d("-33.34")]);
        assert_eq!((p.on_hand, p.value), (Decimal::ZERO, Decimal::ZERO));
    }

    #[test]
    fn rounding_never_drifts_over_many_small_moves() {
        let (mut p, first) = Position::default().receive(d("7"), d("0.013"));
        let mut ledger = first.value;
        for i in 0..1000 {
            let (next, change) = if i % 3 == 0 {
                p.receive(d("0.7"), d("0.017"))
            } else {
                p.issue(d("0.3"), Decimal::ZERO).unwrap()
            };
            ledger += change.value;
            p = next;
            assert_eq!(
                p.value, ledger,
                "the value and its ledger differ at move {i}"
            );
            assert!(p.value >= Decimal::ZERO, "value went negative at move {i}");
        }
        let (empty, last) = p.issue(p.on_hand, Decimal::ZERO).unwrap();
        assert_eq!(empty.value, Decimal::ZERO);
        assert_eq!(ledger + last.value, Decimal::ZERO);
    }

    #[test]
    fn issues_respect_reservations_except_their_own() {
        let (p, _) = Position::default().receive(d("10"), d("5"));
        let p = p.reserve(d("8")).unwrap();
        let short = p.issue(d("3"), Decimal::ZERO).unwrap_err();
        assert_eq!((short.available, short.reserved), (d("2"), d("8")));
        let (p, _) = p.issue(d("8"), d("8")).unwrap();
        assert_eq!((p.on_hand, p.reserved), (d("2"), Decimal::ZERO));
        assert!(p.reserve(d("3")).is_err());
    }

    #[test]
    fn a_count_sets_what_is_on_hand() {
        let (p, _) = Position::default().receive(d("10"), d("4"));
        let (p, out) = p.count(d("7"), None).unwrap();
        assert_eq!(
            (p.on_hand, p.value, out.qty, out.value),
            (d("7"), d("28"), d("-3"), d("-12"))
        );
        let (p, found) = p.count(d("9"), Some(d("5"))).unwrap();
        assert_eq!(
            (p.on_hand, found.value, p.value),
            (d("9"), d("10"), d("38"))
        );
        let (same, none) = p.count(d("9"), None).unwrap();
        assert_eq!((same, none.qty), (p.clone(), Decimal::ZERO));
        let reserved = p.reserve(d("8")).unwrap();
        assert!(
            reserved.count(d("7"), None).is_err(),
            "below what is reserved"
        );
    }

    fn fifo() -> Position {
        Position {
            layers: Some(Vec::new()),
            ..Position::default()
        }
    }

    #[test]
    fn fifo_issues_consume_the_oldest_layers_first() {
        // ERPNext's FIFO test: 10 @ 10 then 10 @ 20; an issue of 15 takes 10 @ 10 and
        // 5 @ 20 = 200.00 (moving average would take 225.00), leaving 5 @ 20.
        let (p, _) = fifo().receive(d("10"), d("10"));
        let (p, _) = p.receive(d("10"), d("20"));
        assert_eq!((p.value, p.rate), (d("300"), d("15")));
        let (p, out) = p.issue(d("15"), Decimal::ZERO).unwrap();
        assert_eq!((out.value, out.rate), (d("-200.00"), d("13.3333333333")));
        let left = Layer {
            qty: d("5"),
            rate: d("20"),
        };
        assert_eq!(p.layers, Some(vec![left]));
        assert_eq!((p.on_hand, p.value, p.rate), (d("5"), d("100.00"), d("20")));
        let (p, _) = p.receive(d("1"), d("20"));
        assert_eq!(
            p.layers.as_ref().map(Vec::len),
            Some(1),
            "same rate: one layer"
        );
        let (empty, last) = p.issue(d("6"), Decimal::ZERO).unwrap();
        assert_eq!((last.value, empty.value), (d("-120.00"), Decimal::ZERO));
        assert_eq!(empty.layers, Some(Vec::new()));
    }

    #[test]
    fn a_receipt_into_an_empty_position_takes_the_incoming_rate() {
        let (p, _) = Position::default().receive(d("2"), d("10"));
        let (p, _) = p.issue(d("2"), Decimal::ZERO).unwrap();
        let (p, _) = p.receive(d("1"), d("40"));
        assert_eq!((p.rate, p.value), (d("40"), d("40")));
    }
}
