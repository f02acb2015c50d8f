package protocol

import (
	"fmt"
	"strconv"
)

// attrWant is one attribute the scanner expects, in order.
type attrWant struct {
	name   string
	number bool
	// view: keep the value as a view into the read buffer (s.views),
	// valid until the next scan, instead of copying it into s.strs.
	view bool
}

// scanResult is what one scan consumed and converted.
type scanResult struct {
	n int // conversions, as attr_scan0 returns them; -1 on malformed input

	// valuePending: the scan stopped after an unexpected attribute name,
	// so that attribute's value is the next string in the stream.
	valuePending bool
	// midList: the scan stopped inside an attribute list, before its
	// terminator.
	midList bool
}

// scanner state shared by the request reader and the client.
type scanner struct {
	c        *Conn
	peer     string    // "scache socket", as Postfix names the stream in warnings
	budget   int       // bytes left for the current request
	warnings []string  // what Postfix would log, in order
	strs     [4]string // copies: later reads may move the buffer
	nums     [4]int
	// views are the values of the attributes wanted as views, by position:
	// slices of the read buffer or, once a read might have moved the
	// buffer, of own.
	views [4][]byte
	own   []byte
	inBuf uint8 // bit i: views[i] is a slice of the read buffer
}

func (s *scanner) warnf(format string, args ...any) {
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
}

// next reads one string and charges it, with its NUL, to the request
// budget: a request of exactly the budget passes, one byte more does not.
//
// The views taken earlier in the scan are copied to s.own first if the
// read may move or overwrite the buffer (the next string has not arrived
// in full), so that they stay valid until the next scan.
func (s *scanner) next() ([]byte, error) {
	if s.inBuf != 0 && !s.c.stringBuffered() {
		s.moveViews()
	}
	b, err := s.c.readString(s.budget - 1)
	if err != nil {
		return nil, err
	}
	s.budget -= len(b) + 1
	return b, nil
}

// moveViews copies the views that are slices of the read buffer to s.own
// and points them there. Views moved before stay where they are (in own's
// earlier array, if appending moves it).
func (s *scanner) moveViews() {
	for i := range s.views {
		if s.inBuf&(1<<i) != 0 {
			start := len(s.own)
			s.own = append(s.own, s.views[i]...)
			s.views[i] = s.own[start:len(s.own):len(s.own)]
		}
	}
	s.inBuf = 0
}

// scan mirrors util/attr_scan0.c:attr_vscan0() with ATTR_FLAG_STRICT, plus
// ATTR_FLAG_MORE when more is set: the wanted attributes must come in order;
// an early terminator ends the scan with a "missing attribute" warning; any
// other name ends it with an "unexpected attribute" warning (consuming the
// name, not its value); after the wanted attributes, the terminator is
// consumed unless more is set, and an extra attribute there is reported but
// does not reduce the count. Strings land in s.strs, numbers in s.nums, by
// position (views in s.views). An error is returned only when the stream fails (EOF, timeout,
// size limit); the scan result then is meaningless.
func (s *scanner) scan(wants []attrWant, more bool) (scanResult, error) {
	var res scanResult
	// Nothing of an earlier scan shows through a position this one does
	// not fill (a view-mode request's strings, a reply short of an
	// attribute).
	s.strs, s.nums, s.views, s.inBuf = [4]string{}, [4]int{}, [4][]byte{}, 0
	if cap(s.own) > minReadBuf {
		s.own = nil // give back a large label's memory
	}
	s.own = s.own[:0]
	for i := 0; ; i++ {
		end := i == len(wants)
		if end && more {
			res.midList = true
			return res, nil
		}
		wanted := "(list terminator)"
		if !end {
			wanted = wants[i].name
		}
		name, err := s.next()
		if err != nil {
			return res, err
		}
		if len(name) == 0 {
			if !end {
				s.warnf("missing attribute %s in input from %s", wanted, s.peer)
			}
			return res, nil
		}
		if end || string(name) != wanted {
			s.warnf("unexpected attribute %s from %s (expecting: %s)", printable(name), s.peer, wanted)
			res.valuePending, res.midList = true, true
			return res, nil
		}
		value, err := s.next()
		if err != nil {
			return res, err
		}
		if wants[i].number {
			v, ok := ParseNumber(value)
			if !ok {
				s.warnf("malformed numerical data from %s while reading input attribute value: %s", s.peer, printable(value))
				res.n, res.midList = -1, true
				return res, nil
			}
			s.nums[i] = v
		} else if wants[i].view {
			s.views[i] = value
			s.inBuf |= 1 << i
		} else {
			s.strs[i] = string(value)
		}
		res.n++
	}
}

// printable renders client bytes for a warning. Attribute names and request
// names are logged; anything that does not look like one (it may be a
// misplaced label holding an e-mail address) is replaced by its length.
func printable(b []byte) string {
	if len(b) > 64 {
		return "(" + strconv.Itoa(len(b)) + " bytes)"
	}
	for _, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '_' || ch == '-' || ch == '.' || ch == ' ' || ch == '+') {
			return "(" + strconv.Itoa(len(b)) + " bytes)"
		}
	}
	return string(b)
}
