package cache

import "unsafe"

// table maps the labels of one name space of a shard (endpoints or
// destinations) to their list records: open addressing with linear
// probing over a power-of-two array of 8-byte slots, each the label's
// 32-bit hash and its list's ref (0: empty), in memory from allocMem.
// Deletion shifts the following slots back, so there are no tombstones.
// The label itself is in the list record; the hash in the slot spares
// comparing labels that cannot match. It is guarded by the shard's mutex.
type table struct {
	mem   []byte
	slots []uint64
	mask  uint32
	count int
}

// tableMin is the smallest number of slots (512 bytes).
const tableMin = 64

func tableSlot(h uint32, r ref) uint64 { return uint64(h)<<32 | uint64(r) }

// resize moves the entries to a table of n slots (a power of two).
func (t *table) resize(n int) {
	old, oldMem := t.slots, t.mem
	t.mem = allocMem(n * 8)
	t.slots = unsafe.Slice((*uint64)(unsafe.Pointer(&t.mem[0])), n)
	t.mask = uint32(n - 1)
	for _, v := range old {
		if v != 0 {
			i := uint32(v>>32) & t.mask
			for t.slots[i] != 0 {
				i = (i + 1) & t.mask
			}
			t.slots[i] = v
		}
	}
	if oldMem != nil {
		freeMem(oldMem)
	}
}

// find returns the ref of the list in a whose label is key, or 0.
func (t *table) find(a *arena, h uint32, key string) ref {
	if t.count == 0 {
		return 0
	}
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		v := t.slots[i]
		if v == 0 {
			return 0
		}
		if uint32(v>>32) == h && a.listLabel(ref(v)) == key {
			return ref(v)
		}
	}
}

// insert adds r, whose label is not in the table, under hash h.
func (t *table) insert(h uint32, r ref) {
	if t.slots == nil {
		t.resize(tableMin)
	} else if (t.count+1)*4 > len(t.slots)*3 {
		t.resize(2 * len(t.slots))
	}
	i := h & t.mask
	for t.slots[i] != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = tableSlot(h, r)
	t.count++
}

// remove deletes r, which is in the table under hash h.
func (t *table) remove(h uint32, r ref) {
	want := tableSlot(h, r)
	i := h & t.mask
	for t.slots[i] != want {
		i = (i + 1) & t.mask
	}
	// Move back each following entry of the run that may sit at i: one
	// whose home slot is not cyclically within (i, j].
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		v := t.slots[j]
		if v == 0 {
			break
		}
		home := uint32(v>>32) & t.mask
		if (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[i] = v
			i = j
		}
	}
	t.slots[i] = 0
	t.count--
	// Shrink by half below an eighth full, down to tableMin, which stays
	// (a table that came and went with one label would map and unmap at
	// every request).
	if len(t.slots) > tableMin && t.count*8 < len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
}
