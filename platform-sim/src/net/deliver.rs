//! Delivering the packets that are due: the receiving side of [`Net`].

use sasyncd_core::time::Instant;

use super::*;

impl Net {
    /// Delivers every packet due at `now`, in time order (ties by
    /// connection and direction), consulting `links` for reachability.
    pub fn handle_timeout(&mut self, now: Instant, links: &Links) {
        loop {
            let next = self
                .conns
                .iter()
                .flat_map(|(&id, c)| {
                    (0..2).filter_map(move |d| c.q[d].front().map(|p| (p.at, id, d)))
                })
                .filter(|(at, ..)| *at <= now)
                .min();
            let Some((_, id, d)) = next else { break };
            let Some(mut c) = self.conns.remove(&id) else {
                break;
            };
            self.deliver_head(&mut c, id, d, now, links);
            let live = c
                .ends
                .iter()
                .any(|e| matches!(e.state, EndState::SynSent | EndState::Established));
            if live || c.q.iter().any(|q| !q.is_empty()) {
                self.conns.insert(id, c);
            }
        }
    }

    fn event(&mut self, node: NodeId, id: u64, side: usize, kind: NetEventKind) {
        self.events.push_back(NetEvent {
            node,
            conn: ConnId::of(id, side),
            kind,
        });
    }

    /// Both live ends of `c` see a reset; everything in flight is lost.
    pub(super) fn reset_conn(&mut self, c: &mut Conn, id: u64) {
        for q in c.q.iter_mut() {
            q.clear();
        }
        for side in 0..2 {
            let node = c.ends[side].node;
            match c.ends[side].state {
                EndState::Established => {
                    self.event(node, id, side, NetEventKind::Closed(CloseReason::Reset))
                }
                // A connect in progress fails as a kernel would end it.
                EndState::SynSent => self.event(
                    node,
                    id,
                    side,
                    NetEventKind::ConnectFailed(Errno::ECONNRESET),
                ),
                _ => {}
            }
            c.ends[side].state = EndState::Closed;
        }
    }

    fn deliver_head(&mut self, c: &mut Conn, id: u64, d: usize, now: Instant, links: &Links) {
        let Some(pkt) = c.q[d].pop_front() else {
            return;
        };
        let sender = c.ends[d].node;
        let target_addr = if pkt.kind == Kind::Syn {
            c.ends[0].remote
        } else {
            c.ends[1 - d].local
        };
        let receiver = self
            .owners
            .get(&target_addr)
            .copied()
            .filter(|&r| self.hosts[r].alive && links.reachable(sender, r));
        let Some(r) = receiver else {
            return self.stall(c, id, d, pkt, now);
        };
        let inc = self.hosts[r].incarnation;
        if pkt.kind == Kind::Syn {
            let listening = self.hosts[r].listening;
            let acc = &mut c.ends[1];
            acc.node = r;
            acc.incarnation = inc;
            if listening {
                acc.state = EndState::Established;
                // The source the acceptor sees (spoofed by `connect_as`).
                let (peer, local) = (c.ends[1].remote, c.ends[0].remote);
                self.event(r, id, 1, NetEventKind::Accepted { peer, local });
                self.push(c, 1, Kind::SynAck, now);
            } else {
                acc.state = EndState::Closed;
                self.push(c, 1, Kind::Rst, now);
            }
            return;
        }
        let rs = 1 - d;
        let rend = &c.ends[rs];
        let valid = rend.node == r
            && rend.incarnation == inc
            && matches!(rend.state, EndState::Established | EndState::SynSent);
        let established = valid && rend.state == EndState::Established;
        match pkt.kind {
            Kind::Syn => {}
            Kind::SynAck if valid && !established => {
                c.ends[rs].state = EndState::Established;
                self.event(r, id, rs, NetEventKind::Connected);
            }
            Kind::Data { bytes, counted } => {
                let s = &mut c.ends[d];
                s.buffered -= counted;
                if s.want_writable && s.state == EndState::Established {
                    s.want_writable = false;
                    self.event(sender, id, d, NetEventKind::Writable);
                }
                if established {
                    self.deliver_data(c, id, rs, sender, r, bytes, now);
                } else if !valid {
                    self.push(c, rs, Kind::Rst, now);
                }
            }
            Kind::Fin if established => {
                c.ends[rs].state = EndState::Closed;
                self.event(r, id, rs, NetEventKind::Closed(CloseReason::Eof));
            }
            Kind::Rst => {
                if valid {
                    let kind = if established {
                        NetEventKind::Closed(CloseReason::Reset)
                    } else {
                        NetEventKind::ConnectFailed(Errno::ECONNREFUSED)
                    };
                    c.ends[rs].state = EndState::Closed;
                    c.q[rs].clear();
                    self.event(r, id, rs, kind);
                }
            }
            // SYN-ACK or FIN for an end that is gone: answer with RST.
            _ => {
                if !valid {
                    self.push(c, rs, Kind::Rst, now);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_data(
        &mut self,
        c: &mut Conn,
        id: u64,
        rs: usize,
        from: NodeId,
        to: NodeId,
        mut bytes: Vec<u8>,
        now: Instant,
    ) {
        let conn = ConnId::of(id, rs);
        if let Some(t) = self.tamper.as_mut() {
            let info = SegmentInfo {
                from,
                to,
                conn,
                at: now,
            };
            t.data(&info, &mut bytes, &mut self.rng);
        }
        if self.recording {
            self.recorded.push(Recorded {
                at: now,
                conn,
                bytes: bytes.clone(),
            });
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let k = self.rng.range(1..rest.len() as u64 + 1) as usize;
            let (a, b) = rest.split_at(k);
            self.event(to, id, rs, NetEventKind::Data(a.to_vec()));
            rest = b;
        }
        if self.rng.chance(self.cfg.reset_chance) {
            self.reset_conn(c, id);
        }
    }

    /// The head packet of direction `d` cannot be delivered now.
    fn stall(&mut self, c: &mut Conn, id: u64, d: usize, mut pkt: Pkt, now: Instant) {
        if pkt.kind == Kind::Syn {
            if now >= c.connect_deadline {
                if c.ends[0].state == EndState::SynSent {
                    let node = c.ends[0].node;
                    self.event(node, id, 0, NetEventKind::ConnectFailed(Errno::ETIMEDOUT));
                }
                c.ends[0].state = EndState::Closed;
                return;
            }
        } else if pkt.kind == Kind::SynAck && now >= c.connect_deadline {
            // The answer to our SYN never gets through: the connect times
            // out like the SYN itself would have.
            if c.ends[0].state == EndState::SynSent {
                let node = c.ends[0].node;
                self.event(node, id, 0, NetEventKind::ConnectFailed(Errno::ETIMEDOUT));
                c.ends[0].state = EndState::Closed;
            }
            return;
        } else {
            let since = *pkt.stall_since.get_or_insert(now);
            if now.since(since) >= self.cfg.give_up {
                if matches!(pkt.kind, Kind::Data { .. } | Kind::Fin) {
                    let s = &mut c.ends[d];
                    if s.state == EndState::Established {
                        let node = s.node;
                        self.event(node, id, d, NetEventKind::Closed(CloseReason::TimedOut));
                    }
                    s.state = EndState::Closed;
                    s.buffered = 0;
                    c.q[d].clear();
                }
                return;
            }
        }
        pkt.at = now + self.cfg.rto;
        c.q[d].push_front(pkt);
    }
}
