package cache

import (
	"fmt"
	"math/bits"
	"unsafe"
)

// A shard keeps its sessions, bindings and label lists as records in an
// arena of its own: fixed-size slots of a size class, carved out of chunks
// of memory from allocMem, outside the Go heap. A record is a header of
// plain integers followed by its strings (a label, a property); records
// refer to each other by ref, a class and a slot number, never by pointer.
// So the garbage collector has nothing to scan in the cache and does not
// count it towards its goal: a cache of 100,000 sessions costs its records
// and nothing on top (a Go heap of pointer-linked entries and strings
// costs twice its live size under GOGC=100), and a lookup touches one
// record per list instead of a string header and its bytes apart.
//
// Each class hands out freed slots first (a free list threaded through the
// slots), then new slots in order; chunk k of a class holds twice the
// slots of chunk k-1 (from k = 2), so a class of n slots has O(log n)
// chunks and the pages past the last slot used are never touched. When the
// last record of a class in a shard goes, its chunks but the first are
// unmapped: a cache that has emptied after a peak gives the memory back.

// ref names a record: class<<refSlotBits | slot. The zero ref is no record
// (class 0 is never used).
type ref uint32

const (
	refSlotBits = 26
	maxSlots    = 1 << refSlotBits
	refSlotMask = maxSlots - 1

	// bigClass holds the records longer than the largest class, each in a
	// Go byte slice of its own (labels and properties of many kilobytes,
	// which Postfix's clients do not send).
	bigClass = 63

	// chunkMin is the size of the first chunk of a class.
	chunkMin = 4096
)

func (r ref) class() int   { return int(r >> refSlotBits) }
func (r ref) slot() uint32 { return uint32(r) & refSlotMask }

// classSizes are the slot sizes, multiples of 8 so that every header is
// aligned: 8-byte steps to 256 (smtp(8)'s records are 40 to 200 bytes),
// then 64-byte steps to 1 KiB, then 256-byte steps to 4 KiB. Index 0 is
// unused.
var classSizes = func() []uint32 {
	s := []uint32{0}
	for n := uint32(16); n <= 256; n += 8 {
		s = append(s, n)
	}
	for n := uint32(320); n <= 1024; n += 64 {
		s = append(s, n)
	}
	for n := uint32(1280); n <= 4096; n += 256 {
		s = append(s, n)
	}
	if len(s) > bigClass {
		panic("cache: too many size classes")
	}
	return s
}()

// maxClassSize is the largest record kept in a class.
var maxClassSize = int(classSizes[len(classSizes)-1])

// classOf8 maps (n+7)/8 to the smallest class of at least n bytes.
var classOf8 = func() []uint8 {
	t := make([]uint8, maxClassSize/8+1)
	c := 1
	for i := range t {
		for int(classSizes[c]) < i*8 {
			c++
		}
		t[i] = uint8(c)
	}
	return t
}()

// classOf returns the class of a record of n bytes.
func classOf(n int) int {
	if n > maxClassSize {
		return bigClass
	}
	return int(classOf8[(n+7)/8])
}

// pool is one size class of an arena.
type pool struct {
	chunks [][]byte
	used   uint32 // slots handed out in order so far
	live   uint32 // slots in use
	free   ref    // freed slots, linked through their first four bytes
	size   uint32 // slot size
	shift  uint8  // chunk 0 holds 1<<shift slots
}

// arena is a shard's record memory. It is guarded by the shard's mutex.
type arena struct {
	pools   [len64]pool
	big     [][]byte // bigClass records, by slot
	bigFree []uint32 // free slots of big
	bigLive int
}

const len64 = 64

// chunkOf returns the chunk that holds slot and the slot's index in it.
func (p *pool) chunkOf(slot uint32) (k int, i uint32) {
	k = bits.Len32(slot >> p.shift)
	if k == 0 {
		return 0, slot
	}
	return k, slot - 1<<(uint(p.shift)+uint(k)-1)
}

// chunkSlots is the number of slots of chunk k.
func (p *pool) chunkSlots(k int) uint32 {
	if k == 0 {
		return 1 << p.shift
	}
	return 1 << (uint(p.shift) + uint(k) - 1)
}

func (p *pool) init(size uint32) {
	p.size = size
	for uint32(1)<<p.shift*size < chunkMin {
		p.shift++
	}
}

// at returns the address of a slot.
func (p *pool) at(slot uint32) unsafe.Pointer {
	k, i := p.chunkOf(slot)
	return unsafe.Pointer(&p.chunks[k][uint(i)*uint(p.size)])
}

// alloc returns a record of at least n bytes. Its contents are undefined;
// the caller sets every header field.
func (a *arena) alloc(n int) ref {
	c := classOf(n)
	if c == bigClass {
		return a.allocBig(n)
	}
	p := &a.pools[c]
	if p.size == 0 {
		p.init(classSizes[c])
	}
	p.live++
	if r := p.free; r != 0 {
		p.free = *(*ref)(p.at(r.slot()))
		return r
	}
	slot := p.used
	if slot == maxSlots {
		panic(fmt.Sprintf("cache: more than %d records of %d bytes in a shard", maxSlots, p.size))
	}
	if k, _ := p.chunkOf(slot); k == len(p.chunks) {
		p.chunks = append(p.chunks, allocMem(int(p.chunkSlots(k))*int(p.size)))
	}
	p.used++
	return ref(c<<refSlotBits) | ref(slot)
}

func (a *arena) allocBig(n int) ref {
	b := make([]byte, (n+7)&^7)
	var slot uint32
	if k := len(a.bigFree); k > 0 {
		slot = a.bigFree[k-1]
		a.bigFree = a.bigFree[:k-1]
		a.big[slot] = b
	} else {
		if len(a.big) == maxSlots {
			panic("cache: too many large records in a shard")
		}
		slot = uint32(len(a.big))
		a.big = append(a.big, b)
	}
	a.bigLive++
	return ref(bigClass<<refSlotBits) | ref(slot)
}

// free returns r's slot to its class. When the class then holds no
// record, its chunks but the first are unmapped.
func (a *arena) free(r ref) {
	c := r.class()
	if c == bigClass {
		a.big[r.slot()] = nil
		a.bigFree = append(a.bigFree, r.slot())
		if a.bigLive--; a.bigLive == 0 {
			a.big, a.bigFree = nil, nil
		}
		return
	}
	p := &a.pools[c]
	if p.live--; p.live == 0 {
		for k := 1; k < len(p.chunks); k++ {
			freeMem(p.chunks[k])
			p.chunks[k] = nil
		}
		p.chunks = p.chunks[:1]
		p.used, p.free = 0, 0
		return
	}
	*(*ref)(p.at(r.slot())) = p.free
	p.free = r
}

// ptr returns the address of r's record.
func (a *arena) ptr(r ref) unsafe.Pointer {
	if r.class() == bigClass {
		return unsafe.Pointer(&a.big[r.slot()][0])
	}
	return a.pools[r.class()].at(r.slot())
}

// bytesAt returns n bytes of r's record from offset off.
func (a *arena) bytesAt(r ref, off, n uint32) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(a.ptr(r), off)), n)
}

// putString copies str into r's record at offset off and returns the
// offset after it.
func (a *arena) putString(r ref, off uint32, str string) uint32 {
	n := uint32(len(str))
	copy(a.bytesAt(r, off, n), str)
	return off + n
}

// stringAt is bytesAt as a string that aliases the record: it is valid
// only while the record is, and only under the shard's lock.
func (a *arena) stringAt(r ref, off, n uint32) string {
	return unsafe.String((*byte)(unsafe.Add(a.ptr(r), off)), n)
}

// inUse returns the bytes of the slots handed out so far in every class,
// and of the large records.
func (a *arena) inUse() int64 {
	var n int64
	for c := range a.pools {
		n += int64(a.pools[c].used) * int64(a.pools[c].size)
	}
	for _, b := range a.big {
		n += int64(len(b))
	}
	return n
}
