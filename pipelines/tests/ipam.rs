//! The allocator against a plain model of Kube-OVN's rules, over random operation sequences:
//! no address or MAC is ever held twice, `allocate` gives the lowest address neither excluded,
//! used nor released (else the lowest released one), and the counts add up.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use pipelines::model::ipam::{local_mac, IpamError, SubnetPool};
use pipelines::model::Ipv4Range;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8),
    Static(u8, u8),
    Release(u8),
    Pool(u8, Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..12u8).prop_map(Op::Allocate),
        1 => (0..12u8, 0..16u8).prop_map(|(o, h)| Op::Static(o, h)),
        2 => (0..12u8).prop_map(Op::Release),
        1 => (0..12u8, proptest::collection::vec(0..16u8, 1..4)).prop_map(|(o, p)| Op::Pool(o, p)),
    ]
}

/// 10.0.0.0/28: hosts .1 to .14; .1 to .3 excluded.
fn host(h: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, h)
}

proptest! {
    #[test]
    fn matches_the_rules(ops in proptest::collection::vec(op(), 1..60)) {
        let exclude = [Ipv4Range { start: host(1), end: host(3) }];
        let mut p = SubnetPool::new("s", "10.0.0.0/28".parse().unwrap(), &exclude);
        let excluded = |h: u8| (1..=3).contains(&h);
        let mut held: BTreeMap<String, u8> = BTreeMap::new();
        let mut released: BTreeSet<u8> = BTreeSet::new();
        let mut n = 0u32;
        let mut new_mac = move || { n += 1; local_mac([0, 0, 0, 0, (n >> 8) as u8, n as u8]) };
        for op in ops {
            match op {
                Op::Allocate(o) => {
                    let owner = format!("p{o}");
                    let want = match held.get(&owner) {
                        Some(h) => Some(*h),
                        None => (1..=14u8)
                            .find(|h| !excluded(*h) && !held.values().any(|x| x == h) && !released.contains(h))
                            .or_else(|| released.iter().next().copied()),
                    };
                    match (p.allocate(&owner, None, &mut new_mac), want) {
                        (Ok(l), Some(h)) => {
                            prop_assert_eq!(l.ip, host(h));
                            released.remove(&h);
                            held.insert(owner, h);
                        }
                        (Err(IpamError::Full(_)), None) => {}
                        (got, want) => prop_assert!(false, "{got:?} vs {want:?}"),
                    }
                }
                Op::Static(o, h) => {
                    let owner = format!("p{o}");
                    let r = p.allocate_static(&owner, host(h), local_mac([9, 9, 9, 9, o, h]));
                    let taken = held.iter().any(|(w, x)| *x == h && *w != owner);
                    if !(1..=14).contains(&h) || taken {
                        prop_assert!(r.is_err(), "{r:?}");
                    } else {
                        prop_assert!(r.is_ok(), "{r:?}");
                        if let Some(old) = held.insert(owner, h) {
                            if old != h && !excluded(old) {
                                released.insert(old);
                            }
                        }
                        released.remove(&h);
                    }
                }
                Op::Release(o) => {
                    let owner = format!("p{o}");
                    let r = p.release(&owner);
                    prop_assert_eq!(r.map(|l| l.ip), held.get(&owner).map(|h| host(*h)));
                    if let Some(h) = held.remove(&owner) {
                        if !excluded(h) {
                            released.insert(h);
                        }
                    }
                }
                Op::Pool(o, pool) => {
                    let owner = format!("p{o}");
                    let ips: Vec<Ipv4Addr> = pool.iter().map(|h| host(*h)).collect();
                    let want = pool.iter().copied().find(|h| (1..=14).contains(h)
                        && held.iter().all(|(w, x)| x != h || *w == owner));
                    match (p.allocate_from(&owner, &ips, None, &mut new_mac), want) {
                        (Ok(l), Some(h)) => {
                            prop_assert_eq!(l.ip, host(h));
                            if let Some(old) = held.insert(owner, h) {
                                if old != h && !excluded(old) {
                                    released.insert(old);
                                }
                            }
                            released.remove(&h);
                        }
                        (Err(IpamError::PoolExhausted { .. }), None) => {}
                        (got, want) => prop_assert!(false, "{got:?} vs {want:?}"),
                    }
                }
            }
            // Never twice; the counts add up.
            let mut ips = BTreeSet::new();
            let mut macs = BTreeSet::new();
            for (owner, h) in &held {
                let l = p.lease(owner).unwrap();
                prop_assert_eq!(l.ip, host(*h));
                prop_assert!(ips.insert(l.ip));
                prop_assert!(macs.insert(l.mac));
            }
            prop_assert_eq!(p.using(), held.len() as u64);
            let used_outside = held.values().filter(|h| !excluded(**h)).count() as u64;
            prop_assert_eq!(p.available(), 14 - 3 - used_outside);
        }
    }
}
