//! `Display` in ovs-ofctl syntax, so humans and tests read exactly what OVS would print
//! (`ovs-ofctl --no-stats dump-flows` for flows, `ofp-print` for matches and actions).

use std::fmt::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::action::{port, Action, Ct, Learn, LearnDst, LearnSrc, Subfield};
use super::flow::{flow_flags, Flow, Instructions};
use super::oxm::{ct_state, eth_type, ip_proto, u128_to_mac, Field, Format, Match, MatchField};

/// OVS's `ds_put_hex`: "0x" + bytes without leading zero bytes; "0" for zero.
fn put_hex(s: &mut String, v: u128, len: u8) {
    let b = v.to_be_bytes();
    let bytes = &b[16 - len.min(16) as usize..];
    let mut printed = false;
    for &x in bytes {
        if x != 0 || printed {
            if printed {
                let _ = write!(s, "{x:02x}");
            } else {
                let _ = write!(s, "0x{x:x}");
            }
            printed = true;
        }
    }
    if !printed {
        s.push('0');
    }
}

fn put_mac(s: &mut String, v: u128) {
    let m = u128_to_mac(v);
    let _ = write!(
        s,
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
}

fn put_port(s: &mut String, p: u32) {
    match port::name(p) {
        Some(n) => s.push_str(n),
        None => {
            let _ = write!(s, "{p}");
        }
    }
}

fn put_ipv4_masked(s: &mut String, ip: u32, mask: u32) {
    let _ = write!(s, "{}", Ipv4Addr::from(ip));
    if mask != u32::MAX {
        if mask.leading_ones() + mask.trailing_zeros() == 32 {
            let _ = write!(s, "/{}", mask.leading_ones());
        } else {
            let _ = write!(s, "/{}", Ipv4Addr::from(mask));
        }
    }
}

fn put_ipv6_masked(s: &mut String, ip: u128, mask: u128) {
    let _ = write!(s, "{}", Ipv6Addr::from(ip));
    if mask != u128::MAX {
        if mask.leading_ones() + mask.trailing_zeros() == 128 {
            let _ = write!(s, "/{}", mask.leading_ones());
        } else {
            let _ = write!(s, "/{}", Ipv6Addr::from(mask));
        }
    }
}

fn put_ct_flags(s: &mut String, flags: u32, mask: u32, max: u32) {
    if mask == max {
        if flags == 0 {
            s.push('0');
            return;
        }
        let mut first = true;
        for (bit, name) in ct_state::NAMES {
            if flags & bit != 0 {
                if !first {
                    s.push('|');
                }
                s.push_str(name);
                first = false;
            }
        }
        return;
    }
    if mask == 0 {
        s.push_str("0/0");
        return;
    }
    let mut m = mask;
    while m != 0 {
        let bit = m & m.wrapping_neg();
        let name = ct_state::NAMES
            .iter()
            .find(|(b, _)| *b == bit)
            .map(|(_, n)| *n)
            .unwrap_or("[Unknown]");
        s.push(if flags & bit != 0 { '+' } else { '-' });
        s.push_str(name);
        m &= !bit;
    }
}

/// OVS's `mf_format`: a value (and mask) of a field in its natural notation.
pub fn format_value(s: &mut String, field: Field, len: u8, value: u128, mask: Option<u128>) {
    let info = field.info();
    let full = if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (len as u32 * 8)) - 1
    };
    let mask = match mask {
        Some(m) if m & full == full => None,
        m => m,
    };
    if mask == Some(0) {
        s.push_str("ANY");
        return;
    }
    match info.format {
        Format::Port if mask.is_none() => put_port(s, value as u32),
        Format::Decimal | Format::Port => {
            let _ = write!(s, "{value}");
            if let Some(m) = mask {
                s.push('/');
                put_hex(s, m, len);
            }
        }
        Format::Hex => {
            put_hex(s, value, len);
            if let Some(m) = mask {
                s.push('/');
                put_hex(s, m, len);
            }
        }
        Format::CtState => {
            put_ct_flags(s, value as u32, mask.unwrap_or(0xffff_ffff) as u32, 0xffff)
        }
        Format::Mac => {
            put_mac(s, value);
            if let Some(m) = mask {
                s.push('/');
                put_mac(s, m);
            }
        }
        Format::Ipv4 => put_ipv4_masked(s, value as u32, mask.unwrap_or(u32::MAX as u128) as u32),
        Format::Ipv6 => put_ipv6_masked(s, value, mask.unwrap_or(u128::MAX)),
    }
}

/// `NXM_NX_REG0[0..15]`.
pub fn format_subfield(s: &mut String, sf: &Subfield) {
    s.push_str(sf.field.info().nxm_name);
    if sf.ofs == 0 && sf.n_bits == sf.field.info().n_bits {
        s.push_str("[]");
    } else if sf.n_bits == 1 {
        let _ = write!(s, "[{}]", sf.ofs);
    } else {
        let _ = write!(s, "[{}..{}]", sf.ofs, sf.ofs + sf.n_bits - 1);
    }
}

// --- matches ---

fn put_uint_masked_hex(s: &mut String, name: &str, mf: &MatchField) {
    // format_uint32_masked / format_be64_masked: "%#x" and "/%#x".
    let _ = write!(s, "{name}={:#x}", mf.value);
    if let Some(m) = mf.mask {
        let _ = write!(s, "/{m:#x}");
    }
    s.push(',');
}

fn put_be16_masked(s: &mut String, name: &str, mf: &MatchField) {
    match mf.mask {
        None => {
            let _ = write!(s, "{name}={},", mf.value);
        }
        Some(m) => {
            let _ = write!(s, "{name}=0x{:x}/0x{m:x},", mf.value);
        }
    }
}

fn put_ip_field(s: &mut String, name: &str, mf: &MatchField) {
    s.push_str(name);
    s.push('=');
    put_ipv4_masked(
        s,
        mf.value as u32,
        mf.mask.unwrap_or(u32::MAX as u128) as u32,
    );
    s.push(',');
}

fn put_ipv6_field(s: &mut String, name: &str, mf: &MatchField) {
    s.push_str(name);
    s.push('=');
    put_ipv6_masked(s, mf.value, mf.mask.unwrap_or(u128::MAX));
    s.push(',');
}

fn put_eth_field(s: &mut String, name: &str, mf: &MatchField) {
    s.push_str(name);
    s.push('=');
    put_mac(s, mf.value);
    if let Some(m) = mf.mask {
        s.push('/');
        put_mac(s, m);
    }
    s.push(',');
}

/// OVS's `match_format`, for the fields kovs supports, in OVS's print order.
pub fn format_match(s: &mut String, m: &Match, priority: Option<u16>) {
    let start = s.len();
    if let Some(p) = priority {
        if p != 0x8000 {
            let _ = write!(s, "priority={p},");
        }
    }
    let g = |f: Field| m.get(f);
    if let Some(mf) = g(Field::PktMark) {
        put_uint_masked_hex(s, "pkt_mark", mf);
    }
    if let Some(mf) = g(Field::ConjId) {
        let _ = write!(s, "conj_id={},", mf.value);
    }
    if let Some(mf) = g(Field::CtState) {
        // OVS keeps ct_state in 8 bits: an exact 32-bit match is an 0xff mask.
        let mask = (mf.mask_or_ones() & 0xff) as u32;
        if mask != 0 {
            s.push_str("ct_state=");
            put_ct_flags(s, mf.value as u32 & 0xff, mask, 0xff);
            s.push(',');
        }
    }
    if let Some(mf) = g(Field::CtZone) {
        match mf.mask {
            None => {
                let _ = write!(s, "ct_zone={},", mf.value);
            }
            Some(mk) => {
                let _ = write!(s, "ct_zone=0x{:x}/0x{mk:x},", mf.value);
            }
        }
    }
    if let Some(mf) = g(Field::CtMark) {
        put_uint_masked_hex(s, "ct_mark", mf);
    }

    let dl_type = g(Field::EthType).map(|f| f.value as u16);
    let nw_proto = g(Field::IpProto).map(|f| f.value as u8);
    let mut skip_type = false;
    let mut skip_proto = false;
    if let Some(t) = dl_type {
        skip_type = true;
        let kw = match t {
            eth_type::IPV4 => match nw_proto {
                Some(ip_proto::ICMP) => Some("icmp"),
                Some(ip_proto::TCP) => Some("tcp"),
                Some(ip_proto::UDP) => Some("udp"),
                Some(132) => Some("sctp"),
                _ => Some("ip"),
            },
            eth_type::IPV6 => match nw_proto {
                Some(ip_proto::ICMPV6) => Some("icmp6"),
                Some(ip_proto::TCP) => Some("tcp6"),
                Some(ip_proto::UDP) => Some("udp6"),
                Some(132) => Some("sctp6"),
                _ => Some("ipv6"),
            },
            eth_type::ARP => Some("arp"),
            0x8035 => Some("rarp"),
            0x8847 => Some("mpls"),
            0x8848 => Some("mplsm"),
            _ => None,
        };
        match kw {
            Some(k) => {
                s.push_str(k);
                s.push(',');
                skip_proto = nw_proto.is_some()
                    && !matches!(k, "ip" | "ipv6" | "arp" | "rarp" | "mpls" | "mplsm");
            }
            None => skip_type = false,
        }
    }
    for n in 0..16u8 {
        if let Some(mf) = g(Field::Reg(n)) {
            put_uint_masked_hex(s, Field::Reg(n).info().name, mf);
        }
    }
    // format_flow_tunnel
    if let Some(mf) = g(Field::TunId) {
        put_uint_masked_hex(s, "tun_id", mf);
    }
    if let Some(mf) = g(Field::TunSrc) {
        put_ip_field(s, "tun_src", mf);
    }
    if let Some(mf) = g(Field::TunDst) {
        put_ip_field(s, "tun_dst", mf);
    }
    for n in 0..64u8 {
        if let Some(mf) = g(Field::TunMetadata(n)) {
            let _ = write!(s, "tun_metadata{n}");
            if mf.mask != Some(0) {
                s.push('=');
                put_hex(s, mf.value, mf.len);
                if let Some(mk) = mf.mask {
                    s.push('/');
                    put_hex(s, mk, mf.len);
                }
            }
            s.push(',');
        }
    }
    if let Some(mf) = g(Field::Metadata) {
        put_uint_masked_hex(s, "metadata", mf);
    }
    if let Some(mf) = g(Field::InPort) {
        s.push_str("in_port=");
        put_port(s, mf.value as u32);
        s.push(',');
    }
    // VLAN: OF1.3 vlan_vid (with OFPVID_PRESENT) and vlan_pcp as OVS's TCI.
    let vid = g(Field::VlanVid);
    let pcp = g(Field::VlanPcp);
    if vid.is_some() || pcp.is_some() {
        format_vlan(s, vid, pcp);
    }
    if let Some(mf) = g(Field::EthSrc) {
        put_eth_field(s, "dl_src", mf);
    }
    if let Some(mf) = g(Field::EthDst) {
        put_eth_field(s, "dl_dst", mf);
    }
    if let (false, Some(t)) = (skip_type, dl_type) {
        let _ = write!(s, "dl_type=0x{t:04x},");
    }
    let is_arp = matches!(dl_type, Some(eth_type::ARP) | Some(0x8035));
    if dl_type == Some(eth_type::IPV6) {
        if let Some(mf) = g(Field::Ipv6Src) {
            put_ipv6_field(s, "ipv6_src", mf);
        }
        if let Some(mf) = g(Field::Ipv6Dst) {
            put_ipv6_field(s, "ipv6_dst", mf);
        }
    } else if is_arp {
        if let Some(mf) = g(Field::ArpSpa) {
            put_ip_field(s, "arp_spa", mf);
        }
        if let Some(mf) = g(Field::ArpTpa) {
            put_ip_field(s, "arp_tpa", mf);
        }
    } else {
        if let Some(mf) = g(Field::Ipv4Src) {
            put_ip_field(s, "nw_src", mf);
        }
        if let Some(mf) = g(Field::Ipv4Dst) {
            put_ip_field(s, "nw_dst", mf);
        }
    }
    if is_arp {
        if let Some(mf) = g(Field::ArpOp) {
            let _ = write!(s, "arp_op={},", mf.value);
        }
    } else if let (false, Some(p)) = (skip_proto, nw_proto) {
        let _ = write!(s, "nw_proto={p},");
    }
    if is_arp {
        if let Some(mf) = g(Field::ArpSha) {
            put_eth_field(s, "arp_sha", mf);
        }
        if let Some(mf) = g(Field::ArpTha) {
            put_eth_field(s, "arp_tha", mf);
        }
    }
    if let Some(mf) = g(Field::IpDscp) {
        let _ = write!(s, "nw_tos={},", (mf.value as u8) << 2);
    }
    if let Some(mf) = g(Field::NwTtl) {
        let _ = write!(s, "nw_ttl={},", mf.value);
    }
    let icmp = (dl_type == Some(eth_type::IPV4) && nw_proto == Some(ip_proto::ICMP))
        || (dl_type == Some(eth_type::IPV6) && nw_proto == Some(ip_proto::ICMPV6));
    if icmp {
        if let Some(mf) = g(Field::IcmpType) {
            let _ = write!(s, "icmp_type={},", mf.value);
        }
        if let Some(mf) = g(Field::IcmpCode) {
            let _ = write!(s, "icmp_code={},", mf.value);
        }
    } else {
        let src = g(Field::TcpSrc).or(g(Field::UdpSrc));
        let dst = g(Field::TcpDst).or(g(Field::UdpDst));
        if let Some(mf) = src {
            put_be16_masked(s, "tp_src", mf);
        }
        if let Some(mf) = dst {
            put_be16_masked(s, "tp_dst", mf);
        }
    }
    if s.len() > start && s.ends_with(',') {
        s.pop();
    }
}

fn format_vlan(s: &mut String, vid: Option<&MatchField>, pcp: Option<&MatchField>) {
    // Rebuild OVS's TCI value/mask: CFI (0x1000) = tag present.
    let (mut tci, mut mask) = (0u16, 0u16);
    if let Some(v) = vid {
        let vv = v.value as u16 & 0x1fff;
        let vm = v.mask.map(|m| m as u16 & 0x1fff).unwrap_or(0x1fff);
        tci |= vv & vm;
        mask |= vm;
    }
    if let Some(p) = pcp {
        if tci & 0x1000 != 0 {
            tci |= ((p.value as u16) & 7) << 13;
            mask |= 0xe000;
        }
    }
    let vid_mask = mask & 0x0fff;
    let pcp_mask = mask & 0xe000;
    let cfi = mask & 0x1000;
    if cfi != 0
        && tci & 0x1000 != 0
        && (vid_mask == 0 || vid_mask == 0x0fff)
        && (pcp_mask == 0 || pcp_mask == 0xe000)
        && (vid_mask != 0 || pcp_mask != 0)
    {
        if vid_mask != 0 {
            let _ = write!(s, "dl_vlan={},", tci & 0x0fff);
        }
        if pcp_mask != 0 {
            let _ = write!(s, "dl_vlan_pcp={},", tci >> 13);
        }
    } else if mask == 0xffff {
        let _ = write!(s, "vlan_tci=0x{tci:04x},");
    } else {
        let _ = write!(s, "vlan_tci=0x{tci:04x}/0x{mask:04x},");
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        format_match(&mut s, self, None);
        f.write_str(&s)
    }
}

// --- actions ---

/// Appends one action in ovs-ofctl syntax.
pub fn format_action(s: &mut String, a: &Action) {
    match a {
        Action::Output { port: p, max_len } => {
            if *p < port::MAX {
                s.push_str("output:");
            }
            put_port(s, *p);
            if *p == port::CONTROLLER {
                let _ = write!(s, ":{max_len}");
            }
        }
        Action::OutputReg { src, .. } => {
            s.push_str("output:");
            format_subfield(s, src);
        }
        Action::Group(g) => {
            let _ = write!(s, "group:{g}");
        }
        Action::SetField(mf) => {
            s.push_str("set_field:");
            format_value(s, mf.field, mf.len, mf.value, None);
            s.push_str("->");
            s.push_str(mf.field.info().name);
        }
        Action::RegLoad2(mf) => {
            s.push_str("set_field:");
            format_value(s, mf.field, mf.len, mf.value, mf.mask);
            s.push_str("->");
            s.push_str(mf.field.info().name);
        }
        Action::RegLoad { dst, value } => {
            let _ = write!(s, "load:{value:#x}->");
            format_subfield(s, dst);
        }
        Action::RegMove { src, dst } => {
            s.push_str("move:");
            format_subfield(s, src);
            s.push_str("->");
            format_subfield(s, dst);
        }
        Action::Resubmit { in_port, table } => {
            if *in_port != port::IN_PORT && *table == 255 {
                s.push_str("resubmit:");
                put_port(s, *in_port);
            } else {
                s.push_str("resubmit(");
                if *in_port != port::IN_PORT {
                    put_port(s, *in_port);
                }
                s.push(',');
                if *table != 255 {
                    let _ = write!(s, "{table}");
                }
                s.push(')');
            }
        }
        Action::PushVlan(t) => {
            let _ = write!(s, "push_vlan:{t:#x}");
        }
        Action::PopVlan => s.push_str("pop_vlan"),
        Action::DecTtl => s.push_str("dec_ttl"),
        Action::SetTunnel64(id) => {
            let _ = write!(s, "set_tunnel64:{id:#x}");
        }
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            let _ = write!(s, "conjunction({id},{clause}/{n_clauses})");
        }
        Action::Note(bytes) => {
            s.push_str("note:");
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                let _ = write!(s, "{b:02x}");
            }
        }
        Action::Learn(l) => format_learn(s, l),
        Action::Ct(ct) => format_ct(s, ct),
        Action::Controller2(c) => {
            if c.reason == 1
                && c.controller_id == 0
                && c.userdata.is_empty()
                && !c.pause
                && c.meter_id.is_none()
            {
                let _ = write!(s, "CONTROLLER:{}", c.max_len);
                return;
            }
            s.push_str("controller(");
            if c.reason != 1 {
                let reason = match c.reason {
                    0 => "no_match".to_string(),
                    2 => "invalid_ttl".to_string(),
                    3 => "action_set".to_string(),
                    4 => "group".to_string(),
                    5 => "packet_out".to_string(),
                    r => r.to_string(),
                };
                let _ = write!(s, "reason={reason},");
            }
            if c.max_len != u16::MAX {
                let _ = write!(s, "max_len={},", c.max_len);
            }
            if c.controller_id != 0 {
                let _ = write!(s, "id={},", c.controller_id);
            }
            if !c.userdata.is_empty() {
                s.push_str("userdata=");
                for (i, b) in c.userdata.iter().enumerate() {
                    if i > 0 {
                        s.push('.');
                    }
                    let _ = write!(s, "{b:02x}");
                }
                s.push(',');
            }
            if c.pause {
                s.push_str("pause,");
            }
            if let Some(m) = c.meter_id {
                let _ = write!(s, "meter_id={m},");
            }
            if s.ends_with(',') {
                s.pop();
            }
            s.push(')');
        }
    }
}

fn format_learn(s: &mut String, l: &Learn) {
    let _ = write!(s, "learn(table={}", l.table);
    if l.idle_timeout != 0 {
        let _ = write!(s, ",idle_timeout={}", l.idle_timeout);
    }
    if l.hard_timeout != 0 {
        let _ = write!(s, ",hard_timeout={}", l.hard_timeout);
    }
    if l.fin_idle_timeout != 0 {
        let _ = write!(s, ",fin_idle_timeout={}", l.fin_idle_timeout);
    }
    if l.fin_hard_timeout != 0 {
        let _ = write!(s, ",fin_hard_timeout={}", l.fin_hard_timeout);
    }
    if l.priority != 0x8000 {
        let _ = write!(s, ",priority={}", l.priority);
    }
    if l.flags & 1 != 0 {
        s.push_str(",send_flow_rem");
    }
    if l.flags & 2 != 0 {
        s.push_str(",delete_learned");
    }
    if l.cookie != 0 {
        let _ = write!(s, ",cookie={:#x}", l.cookie);
    }
    for spec in &l.specs {
        s.push(',');
        let n_bytes = spec.n_bits.div_ceil(8) as u8;
        match (&spec.src, &spec.dst) {
            (LearnSrc::Immediate(v), LearnDst::Match(dst)) => {
                if dst.ofs == 0 && dst.n_bits == dst.field.info().n_bits {
                    s.push_str(dst.field.info().name);
                    s.push('=');
                    format_value(s, dst.field, dst.field.info().len, *v, None);
                } else {
                    format_subfield(s, dst);
                    s.push('=');
                    put_hex(s, *v, n_bytes);
                }
            }
            (LearnSrc::Field(src), LearnDst::Match(dst)) => {
                format_subfield(s, dst);
                if src.field != dst.field || src.ofs != dst.ofs {
                    s.push('=');
                    format_subfield(s, src);
                }
            }
            (LearnSrc::Immediate(v), LearnDst::Load(dst)) => {
                s.push_str("load:");
                put_hex(s, *v, n_bytes);
                s.push_str("->");
                format_subfield(s, dst);
            }
            (LearnSrc::Field(src), LearnDst::Load(dst)) => {
                s.push_str("load:");
                format_subfield(s, src);
                s.push_str("->");
                format_subfield(s, dst);
            }
            (LearnSrc::Field(src), LearnDst::Output) => {
                s.push_str("output:");
                format_subfield(s, src);
            }
            (LearnSrc::Immediate(_), LearnDst::Output) => s.push_str("output:<immediate>"),
        }
    }
    s.push(')');
}

fn format_ct(s: &mut String, ct: &Ct) {
    s.push_str("ct(");
    if ct.flags & super::action::ct_flags::COMMIT != 0 {
        s.push_str("commit,");
    }
    if ct.flags & super::action::ct_flags::FORCE != 0 {
        s.push_str("force,");
    }
    if let Some(t) = ct.table {
        let _ = write!(s, "table={t},");
    }
    if let Some(sf) = &ct.zone_src {
        s.push_str("zone=");
        format_subfield(s, sf);
        s.push(',');
    } else if ct.zone_imm != 0 {
        let _ = write!(s, "zone={},", ct.zone_imm);
    }
    if let Some(nat) = &ct.nat {
        use super::action::nat_flags as nf;
        s.push_str("nat");
        if nat.flags & (nf::SRC | nf::DST) != 0 {
            s.push('(');
            s.push_str(if nat.flags & nf::SRC != 0 {
                "src"
            } else {
                "dst"
            });
            if let Some(min) = nat.ipv4_min {
                let _ = write!(s, "={min}");
                if let Some(max) = nat.ipv4_max {
                    if max != min && u32::from(max) != 0 {
                        let _ = write!(s, "-{max}");
                    }
                }
                if let Some(pmin) = nat.proto_min.filter(|p| *p != 0) {
                    let _ = write!(s, ":{pmin}");
                    if let Some(pmax) = nat.proto_max {
                        if pmax != 0 && pmax != pmin {
                            let _ = write!(s, "-{pmax}");
                        }
                    }
                }
                s.push(',');
                if nat.flags & nf::PERSISTENT != 0 {
                    s.push_str("persistent,");
                }
                if nat.flags & nf::PROTO_HASH != 0 {
                    s.push_str("hash,");
                }
                if nat.flags & nf::PROTO_RANDOM != 0 {
                    s.push_str("random,");
                }
            }
            if s.ends_with(',') {
                s.pop();
            }
            s.push(')');
        }
        s.push(',');
    }
    if !ct.exec.is_empty() {
        s.push_str("exec(");
        format_actions(s, &ct.exec);
        s.push_str("),");
    }
    match ct.alg {
        0 => {}
        21 => s.push_str("alg=ftp,"),
        69 => s.push_str("alg=tftp,"),
        a => {
            let _ = write!(s, "alg={a},");
        }
    }
    if s.ends_with(',') {
        s.pop();
    }
    s.push(')');
}

/// Comma-separated actions ("drop" when empty).
pub fn format_actions(s: &mut String, actions: &[Action]) {
    if actions.is_empty() {
        s.push_str("drop");
        return;
    }
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        format_action(s, a);
    }
}

/// Instructions as OVS prints them after `actions=`.
pub fn format_instructions(s: &mut String, ins: &Instructions) {
    if ins.is_empty() {
        s.push_str("drop");
        return;
    }
    let mut first = true;
    let mut sep = |s: &mut String| {
        if !first {
            s.push(',');
        }
        first = false;
    };
    if let Some(m) = ins.meter {
        sep(s);
        let _ = write!(s, "meter:{m}");
    }
    for a in &ins.apply {
        sep(s);
        format_action(s, a);
    }
    if ins.clear_actions {
        sep(s);
        s.push_str("clear_actions");
    }
    if let Some(w) = &ins.write {
        sep(s);
        s.push_str("write_actions(");
        format_actions(s, w);
        s.push(')');
    }
    if let Some((v, m)) = ins.write_metadata {
        sep(s);
        let _ = write!(s, "write_metadata:{v:#x}");
        if m != u64::MAX {
            let _ = write!(s, "/{m:#x}");
        }
    }
    if let Some(t) = ins.goto_table {
        sep(s);
        let _ = write!(s, "goto_table:{t}");
    }
}

/// A flow as `ovs-ofctl --no-stats dump-flows` prints it.
pub fn format_flow(s: &mut String, f: &Flow) {
    if f.cookie != 0 {
        let _ = write!(s, "cookie={:#x}, ", f.cookie);
    }
    if f.table != 0 {
        let _ = write!(s, "table={}, ", f.table);
    }
    if f.idle_timeout != 0 {
        let _ = write!(s, "idle_timeout={}, ", f.idle_timeout);
    }
    if f.hard_timeout != 0 {
        let _ = write!(s, "hard_timeout={}, ", f.hard_timeout);
    }
    format_flow_flags(s, f.flags);
    let before = s.len();
    format_match(s, &f.matches, Some(f.priority));
    if s.len() != before {
        s.push(' ');
    }
    s.push_str("actions=");
    format_instructions(s, &f.instructions);
}

/// `send_flow_rem check_overlap ...` each followed by a space, as OVS does.
pub fn format_flow_flags(s: &mut String, flags: u16) {
    for (bit, name) in [
        (flow_flags::SEND_FLOW_REM, "send_flow_rem "),
        (flow_flags::CHECK_OVERLAP, "check_overlap "),
        (flow_flags::RESET_COUNTS, "reset_counts "),
        (flow_flags::NO_PKT_COUNTS, "no_packet_counts "),
        (flow_flags::NO_BYT_COUNTS, "no_byte_counts "),
    ] {
        if flags & bit != 0 {
            s.push_str(name);
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        format_action(&mut s, self);
        f.write_str(&s)
    }
}

impl fmt::Display for Instructions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        format_instructions(&mut s, self);
        f.write_str(&s)
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(128);
        format_flow(&mut s, self);
        f.write_str(&s)
    }
}
