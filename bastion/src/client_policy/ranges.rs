//! Address sets as sorted, disjoint integer ranges (`u32` for IPv4, `u128` for IPv6): union
//! and difference of rule networks, and the lookup table that finds the first rule covering
//! an address in O(log n).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

#[cfg(test)]
use super::canonical_ip;
use super::canonical_net;

/// An address as an integer: `u32` for IPv4, `u128` for IPv6.
pub(super) trait Key: Copy + Ord {
    const MAX: Self;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

impl Key for u32 {
    const MAX: Self = u32::MAX;
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Key for u128 {
    const MAX: Self = u128::MAX;
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

/// Sort inclusive ranges and merge overlapping and adjacent ones.
pub(super) fn normalize<T: Key>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = out.last_mut() {
            // Touching or overlapping the previous range (whose end may be MAX).
            if last.1.succ().is_none_or(|next| start <= next) {
                last.1 = last.1.max(end);
                continue;
            }
        }
        out.push((start, end));
    }
    out
}

/// `a` minus `b`, both normalized; the result is normalized.
pub(super) fn difference<T: Key>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &(start, end) in a {
        // Ranges of `b` that end before this one starts also end before every later one.
        while b.get(j).is_some_and(|r| r.1 < start) {
            j += 1;
        }
        // The first address of this range not yet removed or kept; `None` once all is done.
        // Every range of `b` seen below ends at or after `from` (sorted, non-adjacent).
        let mut from = Some(start);
        for &(bs, be) in b.iter().skip(j) {
            let Some(f) = from else { break };
            if bs > end {
                break;
            }
            if bs > f {
                if let Some(before) = bs.pred() {
                    out.push((f, before));
                }
            }
            from = be.succ().filter(|&next| next <= end);
        }
        if let Some(f) = from {
            out.push((f, end));
        }
    }
    out
}

/// An address set: normalized ranges per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AddrSet {
    pub(super) v4: Vec<(u32, u32)>,
    pub(super) v6: Vec<(u128, u128)>,
}

impl AddrSet {
    pub(super) fn all() -> Self {
        AddrSet {
            v4: vec![(0, u32::MAX)],
            v6: vec![(0, u128::MAX)],
        }
    }

    /// The union of `nets` (IPv4-mapped IPv6 networks counted as IPv4).
    pub(super) fn from_nets(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match canonical_net(net) {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        AddrSet {
            v4: normalize(v4),
            v6: normalize(v6),
        }
    }

    pub(super) fn union(sets: Vec<AddrSet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for s in sets {
            v4.extend(s.v4);
            v6.extend(s.v6);
        }
        AddrSet {
            v4: normalize(v4),
            v6: normalize(v6),
        }
    }

    pub(super) fn minus(&self, other: &AddrSet) -> Self {
        AddrSet {
            v4: difference(&self.v4, &other.v4),
            v6: difference(&self.v6, &other.v6),
        }
    }

    #[cfg(test)]
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        fn within<T: Key>(ranges: &[(T, T)], x: T) -> bool {
            let i = ranges.partition_point(|r| r.0 <= x);
            i > 0 && ranges.get(i - 1).is_some_and(|r| x <= r.1)
        }
        match canonical_ip(ip) {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => within(&self.v6, u128::from(a)),
        }
    }
}

/// Non-overlapping segments (struct of arrays for the binary search), each labelled with the
/// lowest-numbered rule covering it.
#[derive(Debug, Clone)]
pub(super) struct Table<T> {
    pub(super) starts: Vec<T>,
    pub(super) ends: Vec<T>,
    pub(super) rules: Vec<u32>,
}

impl<T: Key> Table<T> {
    /// Build from `(rule number, normalized ranges)`; where rules overlap the lower number wins.
    pub(super) fn build<'a>(rules: impl IntoIterator<Item = (u32, &'a [(T, T)])>) -> Self
    where
        T: 'a,
    {
        // Sweep over range boundaries, keeping the set of rules covering the current point.
        let mut events: Vec<(T, bool, u32)> = Vec::new();
        for (rule, ranges) in rules {
            for &(start, end) in ranges {
                events.push((start, true, rule));
                if let Some(after) = end.succ() {
                    events.push((after, false, rule));
                }
            }
        }
        events.sort_unstable();
        let mut table = Table {
            starts: Vec::new(),
            ends: Vec::new(),
            rules: Vec::new(),
        };
        let mut active = BTreeSet::new();
        let mut i = 0;
        while let Some(&(point, _, _)) = events.get(i) {
            while let Some(&(p, is_start, rule)) = events.get(i) {
                if p != point {
                    break;
                }
                if is_start {
                    active.insert(rule);
                } else {
                    active.remove(&rule);
                }
                i += 1;
            }
            let Some(&rule) = active.first() else {
                continue;
            };
            let end = match events.get(i) {
                Some(&(next, _, _)) => next.pred(),
                None => Some(T::MAX),
            };
            if let Some(end) = end {
                table.push(point, end, rule);
            }
        }
        table
    }

    pub(super) fn push(&mut self, start: T, end: T, rule: u32) {
        if let (Some(last_end), Some(&last_rule)) = (self.ends.last_mut(), self.rules.last()) {
            if last_rule == rule && last_end.succ() == Some(start) {
                *last_end = end;
                return;
            }
        }
        self.starts.push(start);
        self.ends.push(end);
        self.rules.push(rule);
    }

    pub(super) fn lookup(&self, x: T) -> Option<u32> {
        let i = self.starts.partition_point(|&s| s <= x).checked_sub(1)?;
        if *self.ends.get(i)? >= x {
            self.rules.get(i).copied()
        } else {
            None
        }
    }

    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }
}

/// One list's tables (allow or deny).
#[derive(Debug, Clone)]
pub(super) struct ListTable {
    pub(super) v4: Table<u32>,
    pub(super) v6: Table<u128>,
    pub(super) rule_count: usize,
}

impl ListTable {
    pub(super) fn build(rules: &[(u32, AddrSet)]) -> Self {
        ListTable {
            v4: Table::build(rules.iter().map(|(n, s)| (*n, s.v4.as_slice()))),
            v6: Table::build(rules.iter().map(|(n, s)| (*n, s.v6.as_slice()))),
            rule_count: rules.len(),
        }
    }

    pub(super) fn lookup(&self, ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.v4.len() == 0 && self.v6.len() == 0
    }
}
