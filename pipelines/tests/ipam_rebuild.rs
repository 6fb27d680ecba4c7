//! Rebuild equals live: a pool rebuilt from what its owners hold (as the controller's new leader
//! rebuilds from pods' annotations and IP objects, with `allocate_static`) holds the same
//! leases and counts as the pool that made them, and gives out none of them again.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use pipelines::model::ipam::{local_mac, SubnetPool};
use pipelines::model::Ipv4Range;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8),
    Static(u8, u8),
    Release(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..20u8).prop_map(Op::Allocate),
        1 => (0..20u8, 0..32u8).prop_map(|(o, h)| Op::Static(o, h)),
        2 => (0..20u8).prop_map(Op::Release),
    ]
}

fn pool() -> SubnetPool {
    // 10.0.0.0/27: hosts .1 to .30; the gateway .1 and .5 to .8 excluded.
    let ex = |a: u8, b: u8| Ipv4Range {
        start: Ipv4Addr::new(10, 0, 0, a),
        end: Ipv4Addr::new(10, 0, 0, b),
    };
    SubnetPool::new("s", "10.0.0.0/27".parse().unwrap(), &[ex(1, 1), ex(5, 8)])
}

proptest! {
    #[test]
    fn a_rebuilt_pool_equals_the_live_one(ops in proptest::collection::vec(op(), 1..80)) {
        let mut live = pool();
        let mut n = 0u32;
        let mut macs = || {
            n += 1;
            local_mac([0, 0, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8])
        };
        let mut owners = BTreeSet::new();
        for op in ops {
            match op {
                Op::Allocate(o) => {
                    let _ = live.allocate(&format!("p{o}"), None, &mut macs);
                }
                Op::Static(o, h) => {
                    let m = macs();
                    let _ = live.allocate_static(&format!("p{o}"), Ipv4Addr::new(10, 0, 0, h), m);
                }
                Op::Release(o) => {
                    live.release(&format!("p{o}"));
                }
            }
            owners.insert(format!("p{}", match op { Op::Allocate(o) | Op::Static(o, _) | Op::Release(o) => o }));
        }
        let mut rebuilt = pool();
        for o in &owners {
            if let Some(l) = live.lease(o) {
                prop_assert_eq!(rebuilt.allocate_static(o, l.ip, l.mac), Ok(l));
            }
        }
        for o in &owners {
            prop_assert_eq!(rebuilt.lease(o), live.lease(o));
        }
        prop_assert_eq!(rebuilt.using(), live.using());
        prop_assert_eq!(rebuilt.available(), live.available());
        // What the rebuilt pool gives out next is nobody's.
        let held: BTreeSet<Ipv4Addr> = owners.iter().filter_map(|o| live.lease(o)).map(|l| l.ip).collect();
        while let Ok(l) = rebuilt.allocate(&format!("new{}", rebuilt.using()), None, &mut macs) {
            prop_assert!(!held.contains(&l.ip), "{} given again", l.ip);
            prop_assert!(l.ip != Ipv4Addr::new(10, 0, 0, 1) && !(5..=8).contains(&l.ip.octets()[3]));
        }
    }
}
