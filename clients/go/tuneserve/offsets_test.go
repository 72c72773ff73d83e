package tuneserve

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestByteOffsets(t *testing.T) {
	cases := []struct {
		text, want string
		start, end int
	}{
		{"Angela Merkel visited Paris", "Paris", 22, 27},
		{"José Álvarez vive en Córdoba", "Córdoba", 21, 28},
		{"José Álvarez vive en Córdoba", "José Álvarez", 0, 12},
		{"東京都に住む山田太郎さん", "山田太郎", 6, 10},
		{"東京都に住む山田太郎さん", "東京都", 0, 3},
		{"🎉 party at Café 🇫🇷 Lyon 👩‍👩‍👧", "Lyon", 19, 23},
		{"🎉 party at Café 🇫🇷 Lyon 👩‍👩‍👧", "Café", 11, 15},
		{"🎉 party at Café 🇫🇷 Lyon 👩‍👩‍👧", "👩‍👩‍👧", 24, 29}, // a ZWJ sequence: 5 code points
		{"naïve", "", 5, 5}, // empty span at the end
		{"naïve", "", 2, 2}, // empty span inside
		{"", "", 0, 0},
	}
	for _, c := range cases {
		bs, be, err := ByteOffsets(c.text, c.start, c.end)
		if err != nil {
			t.Fatalf("%q [%d, %d): %v", c.text, c.start, c.end, err)
		}
		if got := c.text[bs:be]; got != c.want {
			t.Errorf("%q [%d, %d) = bytes [%d, %d) %q, want %q", c.text, c.start, c.end, bs, be, got, c.want)
		}
		// Code point offsets are what a rune slice gives.
		if runes := []rune(c.text); string(runes[c.start:c.end]) != c.want {
			t.Errorf("test case %q: [%d, %d) is not the code point span of %q", c.text, c.start, c.end, c.want)
		}
	}
}

func TestByteOffsetsOutOfRange(t *testing.T) {
	for _, span := range [][2]int{{-1, 2}, {3, 2}, {0, 6}, {6, 6}} {
		if _, _, err := ByteOffsets("naïve", span[0], span[1]); err == nil {
			t.Errorf("span %v of a 5 code point text: no error", span)
		}
	}
}

func TestByteOffsetsEveryRune(t *testing.T) {
	text := "aé東🎉" + strings.Repeat("ö", 3)
	n := utf8.RuneCountInString(text)
	runes := []rune(text)
	for s := 0; s <= n; s++ {
		for e := s; e <= n; e++ {
			bs, be, err := ByteOffsets(text, s, e)
			if err != nil || text[bs:be] != string(runes[s:e]) {
				t.Fatalf("[%d, %d): %q, %v; want %q", s, e, text[bs:be], err, string(runes[s:e]))
			}
		}
	}
}
