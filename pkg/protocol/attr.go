package protocol

import (
	"strconv"
)

// Attribute names and request names as Postfix's mail_proto.h and
// scache.h define them.
const (
	AttrRequest  = "request"
	AttrStatus   = "status"
	AttrTTL      = "ttl"
	AttrLabel    = "label"
	AttrProperty = "property"
	AttrDummy    = "dummy"
	AttrProtocol = "protocol"

	ReqSaveEndp = "save_endp"
	ReqFindEndp = "find_endp"
	ReqSaveDest = "save_dest"
	ReqFindDest = "find_dest"

	// ProtocolName is the value of the greeting's protocol attribute
	// (scache.c:scache_post_accept()).
	ProtocolName = "connection_cache_protocol"
)

// Status codes of replies (global/scache.h).
const (
	StatusOK   = 0 // SCACHE_STAT_OK
	StatusBad  = 1 // SCACHE_STAT_BAD: malformed request
	StatusFail = 2 // SCACHE_STAT_FAIL: lookup miss, or no descriptor received
)

// AppendAttr appends one attribute, name NUL value NUL, to b, as
// util/attr_print0.c writes it. Neither name nor value may contain NUL;
// name must not be empty.
func AppendAttr(b []byte, name, value string) []byte {
	return appendAttr(b, name, value)
}

func appendAttr[V string | []byte](b []byte, name string, value V) []byte {
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, value...)
	return append(b, 0)
}

// AppendNumber appends an integer attribute; Postfix prints integers as %u
// of an unsigned int.
func AppendNumber(b []byte, name string, value int) []byte {
	b = append(b, name...)
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(uint32(value)), 10)
	return append(b, 0)
}

// AppendEnd appends the attribute list terminator, an empty name.
func AppendEnd(b []byte) []byte { return append(b, 0) }

// ParseNumber converts an attribute value to an int exactly as Postfix's
// util/attr_scan0.c:attr_scan0_number() does: sscanf(s, "%u%c") must convert
// the number and find nothing after it. Like glibc's scanf, leading white
// space and one sign are accepted, the digits saturate at the maximum of an
// unsigned long, a minus sign negates modulo 2^64, and the result is then
// truncated to 32 bits and read as a C int. So "-1" is -1, "4294967297" is
// 1, "99999999999" is 1215752191 and "1 " is malformed.
func ParseNumber(b []byte) (int, bool) {
	i := 0
	for i < len(b) && isCSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	var v uint64
	overflow := false
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (^uint64(0)-d)/10 {
			overflow = true
		}
		v = v*10 + d
		i++
	}
	if i == start || i != len(b) {
		return 0, false
	}
	switch {
	case overflow:
		v = ^uint64(0) // strtoul: ULONG_MAX, sign ignored
	case neg:
		v = -v
	}
	return int(int32(uint32(v))), true
}

// isCSpace reports whether c is white space in the C locale (isspace()).
func isCSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}
