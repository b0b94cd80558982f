// The IDL of the Thrift tests and benchmark (Apache: thrift --gen py; thriftpy2: thriftpy2.load).
namespace py echoidl

enum Color {
  RED = 1,
  GREEN = 2,
  BLUE = 3,
}

struct Item {
  1: i32 id,
  2: string name,
  3: list<string> tags,
  4: Color color,
  5: map<string, i64> counts,
}

exception NotFound {
  1: string key,
  2: i32 code,
}

service Echo {
  void ping(),
  string echo(1: string s),
  i32 add(1: i32 a, 2: i32 b),
  Item item(1: Item it),
  list<Item> items(1: i32 n),
  Color color(1: Color c),
  Item find(1: string key) throws (1: NotFound nf),
  void fail(1: string why),
  binary blob(1: binary data),
  oneway void note(1: string text),
  string last_note(),
  void sleep(1: i32 ms),
}

service Other {
  string whoami(),
}
