package tuneserve

import (
	"fmt"

	pb "github.com/tuneserve/tuneserve/clients/go/tuneservev1"
)

// ByteOffsets converts the code point offsets [start, end) of ExtractEntities (end exclusive) over
// text into byte offsets, so that text[byteStart:byteEnd] is the span. A Go string indexes UTF-8
// bytes: "é" is 2 bytes, a CJK character 3, an emoji 4, while the server counts each as 1.
func ByteOffsets(text string, start, end int) (byteStart, byteEnd int, err error) {
	if start < 0 || end < start {
		return 0, 0, fmt.Errorf("tuneserve: invalid span [%d, %d)", start, end)
	}
	byteStart, byteEnd = -1, -1
	n := 0 // code points before byte i
	for i := range text {
		if n == start {
			byteStart = i
		}
		if n == end {
			byteEnd = i
			break
		}
		n++
	}
	if byteEnd < 0 && n == end { // the span runs to the end of text
		byteEnd = len(text)
		if byteStart < 0 && n == start {
			byteStart = len(text)
		}
	}
	if byteStart < 0 || byteEnd < 0 {
		return 0, 0, fmt.Errorf("tuneserve: span [%d, %d) beyond the %d code points of the text", start, end, n)
	}
	return byteStart, byteEnd, nil
}

// EntityBytes is ByteOffsets for an entity found in text.
func EntityBytes(text string, e *pb.Entity) (byteStart, byteEnd int, err error) {
	return ByteOffsets(text, int(e.GetStart()), int(e.GetEnd()))
}
