package vgic

import (
	"testing"

	"github.com/bulkhead-hv/bulkhead/gic"
)

// FuzzMMIO plays a guest that writes and reads anything at any offset of
// its distributor and redistributors, with any access size and value,
// between runs of its vCPUs (Flush, the guest's handling, Sync) and
// injections. The vGIC never panics; the identification registers and
// GICD_CTLR's fixed bits stay what New made; priorities keep five bits;
// SGIs stay edge-triggered; and the list registers only ever hold
// interrupts that exist, each in one list register of one vCPU at most.
func FuzzMMIO(f *testing.F) {
	f.Add([]byte{1, 2, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0})                      // GICD_CTLR: both groups
	f.Add([]byte{0x11, 2, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}) // GICD_ISENABLER1
	f.Add([]byte{0x23, 4, 0x80, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x05, 40, 0, 0x04, 0xff})
	f.Fuzz(func(t *testing.T, script []byte) {
		next := func(n int) uint64 {
			var v uint64
			for i := 0; i < n; i++ {
				if len(script) > 0 {
					v |= uint64(script[0]) << (8 * i)
					script = script[1:]
				}
			}
			return v
		}
		shape := next(1)
		nspis, ncpus := 32*int(shape&3+1), int(shape>>2&3+1)
		g := New(nspis, ncpus, 4)
		d, r := g.Distributor(), g.Redistributors()
		typer, iidrWas := d.Read(gic.GICD_TYPER, 4), d.Read(gic.GICD_IIDR, 4)
		var rtyper []uint64
		for i := range ncpus {
			rtyper = append(rtyper, r.Read(uint64(i)*RedistStride+gic.GICR_TYPER, 8))
		}
		// hw is the list registers of the vCPU that runs; the guest
		// changes their state only.
		var hw fakeLRs
		for len(script) > 0 {
			op := next(1)
			size := 1 << (op >> 3 & 3)
			var off uint64
			if op&0x80 != 0 {
				off = next(8)
			} else {
				off = next(3)
			}
			switch op % 6 {
			case 0:
				v := d.Read(off, size)
				if off >= gic.GICD_IPRIORITYR && off < gic.GICD_IPRIORITYR+0x400 && v&0x0707070707070707 != 0 {
					t.Fatalf("GICD_IPRIORITYR+%#x reads %#x: more than five priority bits", off-gic.GICD_IPRIORITYR, v)
				}
			case 1:
				d.Write(off, size, next(8))
			case 2:
				v := r.Read(off, size)
				if o := off % RedistStride; o >= gic.GICR_IPRIORITYR && o < gic.GICR_IPRIORITYR+NumPrivate && v&0x0707070707070707 != 0 {
					t.Fatalf("GICR_IPRIORITYR+%#x reads %#x: more than five priority bits", o-gic.GICR_IPRIORITYR, v)
				}
			case 3:
				r.Write(off, size, next(8))
			case 4:
				c := g.CPUs[off%uint64(ncpus)]
				n := g.Flush(c)
				if n != c.Used() {
					t.Fatalf("Flush says %d list registers are in use, %#x has %d", n, c.lrs, c.Used())
				}
				c.LoadLRs(&hw, n)
				// The guest takes, completes or leaves each one.
				for i := range n {
					switch next(1) % 4 {
					case 1:
						hw.r[i] = hw.r[i]&^LR_STATE_MASK | LR_ACTIVE
					case 2:
						hw.r[i] &^= LR_STATE_MASK
					}
				}
				g.Sync(c, &hw, n)
				if c.used != c.Used() {
					t.Fatalf("after Sync %d list registers are counted in use, %#x has %d", c.used, c.lrs, c.Used())
				}
			case 5:
				g.Inject(int(op>>3)%ncpus, uint32(off%1100))
			}

			if v := d.Read(gic.GICD_TYPER, 4); v != typer {
				t.Fatalf("GICD_TYPER %#x, was %#x", v, typer)
			}
			if v := d.Read(gic.GICD_IIDR, 4); v != iidrWas {
				t.Fatalf("GICD_IIDR %#x, was %#x", v, iidrWas)
			}
			if v := d.Read(pidr2Off, 4); v != pidr2v3 {
				t.Fatalf("GICD_PIDR2 %#x", v)
			}
			if v := d.Read(gic.GICD_CTLR, 4); v&(CTLR_ARE|CTLR_DS) != CTLR_ARE|CTLR_DS || v&^(CTLR_EnableGrp0|CTLR_EnableGrp1|CTLR_ARE|CTLR_DS) != 0 {
				t.Fatalf("GICD_CTLR %#x", v)
			}
			owner := map[uint32]int{}
			for i, c := range g.CPUs {
				if v := r.Read(uint64(i)*RedistStride+gic.GICR_TYPER, 8); v != rtyper[i] {
					t.Fatalf("vCPU %d: GICR_TYPER %#x, was %#x", i, v, rtyper[i])
				}
				if v := r.Read(uint64(i)*RedistStride+gic.GICR_ICFGR0, 4); v != 0xaaaaaaaa {
					t.Fatalf("vCPU %d: GICR_ICFGR0 %#x: SGIs are edge-triggered", i, v)
				}
				seen := map[uint32]bool{}
				for _, lr := range c.lrs {
					if lr&LR_STATE_MASK == 0 {
						continue
					}
					intid := uint32(lr & LR_vINTID_MASK)
					if intid >= uint32(FirstSPI+nspis) || seen[intid] {
						t.Fatalf("vCPU %d's list registers %#x: INTID %d twice or not one of %d", i, c.lrs, intid, FirstSPI+nspis)
					}
					seen[intid] = true
					if intid >= FirstSPI {
						if o, ok := owner[intid]; ok {
							t.Fatalf("SPI %d in the list registers of vCPUs %d and %d", intid, o, i)
						}
						owner[intid] = i
					}
				}
			}
		}
	})
}
