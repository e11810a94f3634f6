# jflat.awk: flatten JSON (stdin) to "path<TAB>value" lines, one per scalar:
#   {"a": [{"b": "x"}, 2]}  ->  .a[0].b<TAB>x   and   .a[1]<TAB>2
# Strings lose their quotes (escapes \" \\ \/ \n \t are decoded, \uXXXX kept).
# The lab's VMs have no jq; this runs under busybox awk, mawk and gawk.
BEGIN { RS = "\001" }
{ text = text $0 }
END {
	n = length(text); i = 1; depth = 0
	while (i <= n) {
		c = substr(text, i, 1)
		if (c == "{" || c == "[") {
			depth++; kind[depth] = c; idx[depth] = 0; key[depth] = ""; pending[depth] = (c == "[")
			i++; continue
		}
		if (c == "}" || c == "]") { depth--; i++; continue }
		if (c == ",") { if (kind[depth] == "[") { idx[depth]++; pending[depth] = 1 }; i++; continue }
		if (c == ":" || c == " " || c == "\t" || c == "\n" || c == "\r") { i++; continue }
		if (c == "\"") {
			s = ""; i++
			while (i <= n) {
				c = substr(text, i, 1)
				if (c == "\\") {
					e = substr(text, i + 1, 1)
					if (e == "n") s = s "\n"; else if (e == "t") s = s "\t"
					else if (e == "u") s = s "\\u"
					else s = s e
					i += 2; continue
				}
				if (c == "\"") { i++; break }
				s = s c; i++
			}
			# A string in an object is a key when a ':' follows it.
			if (kind[depth] == "{" && nextchar(i) == ":") { key[depth] = s; continue }
			emit(s); continue
		}
		# number, true, false, null
		s = ""
		while (i <= n) {
			c = substr(text, i, 1)
			if (c == "," || c == "}" || c == "]" || c == " " || c == "\n" || c == "\t" || c == "\r") break
			s = s c; i++
		}
		emit(s)
	}
}
function nextchar(j,   ch) {
	while (j <= n) { ch = substr(text, j, 1); if (ch != " " && ch != "\n" && ch != "\t" && ch != "\r") return ch; j++ }
	return ""
}
function path(   p, d) {
	p = ""
	for (d = 1; d <= depth; d++) p = p (kind[d] == "[" ? "[" idx[d] "]" : "." key[d])
	return p
}
function emit(v) { print path() "\t" v }
