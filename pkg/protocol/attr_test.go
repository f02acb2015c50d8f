package protocol

import "testing"

// The ttl parsing table of the protocol reference, observed on the wire
// against Postfix 3.7.11 (bad_ttl_values, ttl_parse_edge_cases).
func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"2", 2, true},
		{"0", 0, true},
		{"-1", -1, true},
		{"-5", -5, true},
		{"4294967296", 0, true},
		{"4294967297", 1, true},
		{"99999999999", 1215752191, true},
		{"2147483648", -2147483648, true},
		{"18446744073709551615", -1, true},
		{"99999999999999999999999", -1, true},  // strtoul saturates at ULONG_MAX
		{"-99999999999999999999999", -1, true}, // saturation ignores the sign
		{" 1", 1, true},
		{"+1", 1, true},
		{"\t2", 2, true},
		{"\n\v\f\r 3", 3, true},
		{"007", 7, true},
		{"-0", 0, true},
		{"abc", 0, false},
		{"", 0, false},
		{" ", 0, false},
		{"+", 0, false},
		{"-", 0, false},
		{"5x", 0, false},
		{"0x10", 0, false},
		{"1.5", 0, false},
		{"1 ", 0, false},
		{"+-1", 0, false},
		{"1\x00", 0, false},
	} {
		got, ok := ParseNumber([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseNumber(%q) = %d, %t; want %d, %t", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAppend(t *testing.T) {
	b := AppendAttr(nil, "request", "find_endp")
	b = AppendNumber(b, "ttl", -1)
	b = AppendAttr(b, "label", "")
	b = AppendEnd(b)
	if got, want := unwire(b), "request^@find_endp^@ttl^@4294967295^@label^@^@^@"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"2", "-1", " +3", "99999999999", "1 ", "0x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseNumber([]byte(s))
		if !ok && v != 0 {
			t.Fatalf("malformed %q gave %d", s, v)
		}
	})
}
