package radio

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"lifeline/message"
	"lifeline/radio/lora"
	"lifeline/radio/testbed"
)

// Attacks on the simulated air: a radio that is not a node (numbered
// after the nodes) transmits whatever it likes, whenever it likes, without
// listening first.

// attackerFrame is what an attacker can put on air for a mesh: the
// frame's bytes, and on a keyed mesh a guessed tag (it lacks the key).
func attackerFrame(t testing.TB, f Frame, keyed bool, guess uint32) []byte {
	t.Helper()
	if !keyed {
		b, err := f.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := f.append(nil, keyedAir)
	if err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.AppendUint32(b, guess)
}

func meshKeys(n int, key []byte) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = key
	}
	return keys
}

// TestForgedFragmentDoesNotSuppress: an attacker beside nodes 1 and 2 of a
// line of five transmits, before the genuine message is sent, a forged
// fragment for every index of it (same key, index and count, other
// bytes), with the most hops. Repair is off, so only the flood can
// deliver: every node still gets the genuine message. On an open mesh the
// forgeries are heard, relayed and set aside at join; on a keyed mesh they
// are dropped unread by the nodes that hear them.
func TestForgedFragmentDoesNotSuppress(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("keyed=%v/seed%d", keyed, seed), func(t *testing.T) {
				c := simConfig{nodes: 5, region: lora.Regions["EU868"], modem: lora.ModemPresets[lora.DefaultModem],
					seed: seed, repairEvery: -1}
				if keyed {
					c.keys = meshKeys(5, testMeshKey(7))
				}
				s := newSim(t, c)
				const attacker = 5
				s.air.Link(attacker, 1, 0)
				s.air.Link(attacker, 2, 0)
				_, long, _ := lineMessages(t, s.now)
				lay := openAir
				if keyed {
					lay = keyedAir
				}
				frames, err := fragment(long, DefaultHops, lay)
				if err != nil || len(frames) < 5 {
					t.Fatalf("%d fragments, %v", len(frames), err)
				}
				never := func() bool { return false }
				for i, f := range frames {
					f.Hops = MaxHops
					f.Payload = append([]byte(nil), f.Payload...)
					f.Payload[len(f.Payload)/2] ^= 0xA5
					s.inject(attacker, attackerFrame(t, f, keyed, uint32(i)*0x9E3779B9))
					s.runUntil(5*time.Second, never)
				}
				s.runUntil(5*time.Minute, never) // the forgeries' relays die down
				s.store(0, long)
				id := message.IDOf(long)
				all := func() bool {
					for _, n := range s.nodes {
						if _, ok := n.got[id]; !ok {
							return false
						}
					}
					return true
				}
				if !s.runUntil(time.Hour, all) {
					for i, n := range s.nodes {
						t.Logf("node %d: %+v", i, n.r.Status(s.now))
					}
					t.Fatal("the genuine message did not reach every node")
				}
				var dropped, substituted, forgedRelays int
				for i, n := range s.nodes {
					st := n.r.Status(s.now)
					dropped += st.Unauthenticated
					substituted += st.Substituted
					if i != 1 && i != 2 && st.Unauthenticated != 0 {
						t.Errorf("node %d, out of the attacker's reach, dropped %d frames", i, st.Unauthenticated)
					}
				}
				for _, n := range s.nodes {
					for _, tx := range n.sent {
						b := tx.Frame
						if keyed {
							b = b[:len(b)-TagSize]
						}
						if f, err := decodeFrame(b, lay); err == nil && f.Type == FrameFragment && !genuineFragment(f, frames) {
							forgedRelays++
						}
					}
				}
				if keyed {
					// Every forgery reached nodes 1 and 2, and was dropped there.
					if dropped != 2*len(frames) || forgedRelays != 0 || substituted != 0 {
						t.Fatalf("keyed: %d forged frames dropped (want %d), %d relayed, %d substituted", dropped, 2*len(frames), forgedRelays, substituted)
					}
				} else if substituted < len(s.nodes)-1 || forgedRelays == 0 {
					// Every node but the origin (which holds the message)
					// heard forgeries first and set them aside.
					t.Fatalf("open: %d messages completed by substitution, %d forged relays", substituted, forgedRelays)
				}
				if s.bad != 0 {
					t.Fatalf("%d envelopes refused by the stores", s.bad)
				}
				t.Logf("every node has it %v after it was sent: %d forged frames dropped unread, %d forged relays, %d substitutions",
					s.now.Sub(s.nodes[0].got[id]).Round(time.Second), dropped, forgedRelays, substituted)
			})
		}
	}
}

func genuineFragment(f Frame, frames []Frame) bool {
	return int(f.Index) < len(frames) && string(frames[f.Index].Payload) == string(f.Payload)
}

// TestSpoofedRepairRequests: for three hours an attacker beside a node
// sends, every 3 s, a want in the node's name for 22 of its long messages
// (all fragments), or a more for a range of symbols of its latest round
// (learnt from its digests, which anyone can read). On a keyed mesh the
// node sends nothing in answer. On an open mesh it answers, but in no
// window of the region's length does the airtime of its answers exceed
// the answer budget (half the duty-cycle budget), with one frame of slack:
// an answer is counted when decided and may go out a little later.
func TestSpoofedRepairRequests(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			c := simConfig{nodes: 1, region: lora.Regions["EU868"], modem: lora.ModemPresets[lora.DefaultModem], seed: 1}
			lay := openAir
			if keyed {
				c.keys = meshKeys(1, testMeshKey(7))
				lay = keyedAir
			}
			s := newSim(t, c)
			const attacker = 1
			s.air.Link(0, attacker, 0)
			victim := s.nodes[0]
			var ids []uint64
			for i := range 60 {
				e, err := testIdentity().NewText("general", fmt.Sprintf("%03d %s", i, string(make([]byte, 3000))), s.now.Add(-time.Hour+time.Duration(i)*time.Second), 0)
				if err != nil {
					t.Fatal(err)
				}
				victim.st.put(e.Raw(), s.now)
				id := e.ID()
				ids = append(ids, binary.BigEndian.Uint64(id[:8]))
			}
			var sent, heard int
			var round Frame // the victim's latest digest, overheard
			end := s.now.Add(3 * time.Hour)
			for i := 0; s.now.Before(end); i++ {
				for _, d := range s.overheard {
					b := d.Frame
					if keyed {
						b = b[:len(b)-TagSize]
					}
					if f, err := decodeFrame(b, lay); err == nil && f.Type == FrameDigest {
						round = f
					}
				}
				s.overheard = s.overheard[:0]
				var f Frame
				if i%2 == 0 || round.To == 0 {
					var entries []byte
					for j := range MaxWants {
						entries = binary.BigEndian.AppendUint64(entries, ids[(i*7+j)%len(ids)])
						entries = append(entries, 0xFF, 0xFF, 0xFF)
					}
					f = Frame{Type: FrameWant, Node: victim.r.cfg.Tag, Payload: entries}
				} else {
					f = Frame{Type: FrameMore, Node: victim.r.cfg.Tag, From: round.From, To: round.To,
						Start: uint16(1 + i%200), Count: uint8(lay.maxSymbols())}
				}
				s.inject(attacker, attackerFrame(t, f, keyed, uint32(i)))
				sent++
				s.runUntil(3*time.Second, func() bool { return false })
			}
			st := victim.r.Status(s.now)
			heard = st.Unauthenticated + st.Heard
			var answers []testbed.Transmission
			var answerAir time.Duration
			for _, tx := range victim.sent {
				b := tx.Frame
				if keyed {
					b = b[:len(b)-TagSize]
				}
				f, err := decodeFrame(b, lay)
				if err != nil {
					t.Fatalf("the victim sent a frame it cannot decode: %v", err)
				}
				own := f.Type == FrameDigest && f.Start == 0 && len(f.Payload) == InitialSymbols*14
				if !own {
					answers = append(answers, tx)
					answerAir += tx.Airtime
				}
			}
			budget := time.Duration(answerShare * s.reg.DutyCycle * float64(s.reg.Window))
			use := testbed.MaxWindowUse(answers, s.reg.Window)
			t.Logf("%d spoofed requests sent, %d heard; the victim sent %d answers, %v on air, at most %v in one window (budget %v); %d answers refused by the budget; %d frames dropped unread",
				sent, heard, len(answers), answerAir.Round(time.Millisecond), use.Round(time.Millisecond), budget, st.Limited, st.Unauthenticated)
			if keyed {
				if len(answers) != 0 || st.Unauthenticated < sent/2 || st.Heard != 0 {
					t.Fatalf("keyed: %d answers sent, %d of %d requests dropped unread", len(answers), st.Unauthenticated, sent)
				}
				return
			}
			full := s.modem.Airtime(MaxFrame)
			if use > budget+full {
				t.Fatalf("open: %v of answers in one window, budget %v", use, budget)
			}
			if use < budget/2 || st.Limited == 0 {
				t.Fatalf("open: the attack spent only %v of the %v budget (limited %d): not an attack", use, budget, st.Limited)
			}
			if u := s.maxUse(0); u > time.Duration(s.reg.DutyCycle*float64(s.reg.Window)) {
				t.Fatalf("open: the victim spent %v in one window", u)
			}
		})
	}
}

// TestKeyedAndOpenOnOneChannel: a keyed mesh (nodes 0–2 in a line), an
// open node (3) beside node 1, and a node with another key (4) beside node
// 2 share the channel. Each hears the others' frames and ignores them: the
// keyed mesh's messages reach its members only, the others' stay with
// them, no store refuses anything, and the open node relays none of the
// keyed mesh's frames.
func TestKeyedAndOpenOnOneChannel(t *testing.T) {
	key := testMeshKey(7)
	s := newSim(t, simConfig{nodes: 5, region: lora.Regions["EU868"], modem: lora.ModemPresets[lora.DefaultModem], seed: 3,
		keys: [][]byte{key, key, key, nil, testMeshKey(8)}, links: [][2]int{{0, 1}, {1, 2}, {3, 1}, {4, 2}}})
	short, long, alert := lineMessages(t, s.now)
	s.store(0, short)
	s.store(0, long)
	other, _ := testIdentity().NewText("general", "from the open node", s.now, 0)
	s.store(3, other.Raw())
	s.store(4, alert)
	mesh := []message.ID{message.IDOf(short), message.IDOf(long)}
	members := func() bool {
		for _, n := range s.nodes[:3] {
			for _, id := range mesh {
				if _, ok := n.got[id]; !ok {
					return false
				}
			}
		}
		return true
	}
	if !s.runUntil(time.Hour, members) {
		t.Fatalf("the keyed mesh's messages did not reach its members")
	}
	s.runUntil(time.Hour, func() bool { return false }) // an hour of repair rounds besides
	for i, n := range s.nodes {
		t.Logf("node %d holds %d: %+v", i, len(n.got), n.r.Status(s.now).RouterStats)
	}
	for i := 3; i < 5; i++ {
		for _, id := range mesh {
			if _, ok := s.nodes[i].got[id]; ok {
				t.Errorf("node %d, outside the mesh, got its message", i)
			}
		}
	}
	for i := range 3 {
		if len(s.nodes[i].got) != 2 {
			t.Errorf("member %d holds %d messages, want the mesh's 2", i, len(s.nodes[i].got))
		}
	}
	open, member, stranger := s.nodes[3].r.Status(s.now), s.nodes[1].r.Status(s.now), s.nodes[4].r.Status(s.now)
	if open.Malformed == 0 || open.Heard != 0 || open.Relayed != 0 || open.Delivered != 0 {
		t.Errorf("the open node took the keyed mesh's frames: %+v", open.RouterStats)
	}
	if member.Unauthenticated == 0 || stranger.Unauthenticated == 0 || stranger.Delivered != 0 {
		t.Errorf("keyed nodes: member dropped %d, stranger dropped %d and took %d", member.Unauthenticated, stranger.Unauthenticated, stranger.Delivered)
	}
	if s.bad != 0 {
		t.Errorf("%d envelopes refused by the stores", s.bad)
	}
}
