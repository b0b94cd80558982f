// Golden Hessian 2.0 vectors written by Caucho Hessian 4.0.38 (Debian libhessian-java), the
// reference implementation, for tests/unit/test_hessian2_golden.py.
//
//   javac -cp /usr/share/java/hessian.jar -d OUT HessianVectors.java
//   java --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
//        -cp /usr/share/java/hessian.jar:OUT HessianVectors > vectors.jsonl
// (JDK 17 closes java.base to reflection; Caucho 4.0.38 predates modules and needs it open.)
//
// One JSON line per vector: {"name", "hex", "expect"}. `expect` describes what a decoder must
// return, in a tagged form (see describe() and docs/hessian2.md):
//   null | true | false | {"int": n} | {"long": n} | {"double": "<IEEE bits, hex>"}
//   {"string": s} | {"binary": hex} | {"date": ms} | {"decimal": s} | {"ref": slot}
//   {"list": [...], "type": t|null[, "variable": true]} | {"map": [[k, v], ...], "type": t|null}
//   {"object": class, "fields": [[name, v], ...]} | {"enum": class, "name": n} | {"seq": [...]}
// Lists, maps, objects, enums and decimals take reference slots in the order met, as in
// Hessian; {"ref": n} means "the very object of slot n".

import com.caucho.hessian.io.AbstractSerializerFactory;
import com.caucho.hessian.io.Deserializer;
import com.caucho.hessian.io.Hessian2Output;
import com.caucho.hessian.io.Serializer;
import com.caucho.hessian.io.SerializerFactory;
import com.caucho.hessian.io.StringValueSerializer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.Serializable;
import java.lang.reflect.Array;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.math.BigDecimal;
import java.util.*;

public class HessianVectors {
    public enum Color { RED, GREEN, BLUE }

    public static class Point implements Serializable {
        public int x; public int y;
        public Point(int x, int y) { this.x = x; this.y = y; }
    }

    public static class Person implements Serializable {
        public String name; public int age; public long id; public double score;
        public boolean active; public Integer boxed; public Date born; public List<Object> tags;
        public Map<String, Object> attrs; public Point location; public Person friend;
        public Color color; public BigDecimal balance; public byte[] photo;
    }

    public static class Node implements Serializable {
        public String label; public Node next;
    }

    public static class Wide implements Serializable {  // a 20-field argument, as skip() meets them
        public int f0 = 0, f1 = 1, f2 = -1, f3 = 300, f4 = 70000;
        public long f5 = 5, f6 = 1L << 40; public double f7 = 1.5, f8 = 0.0; public boolean f9 = true;
        public String f10 = "alpha", f11 = "beta", f12 = "gamma delta", f13 = null, f14 = "h\u00e9";
        public String f15 = "x", f16 = "", f17 = "some longer text for the seventeenth field";
        public Integer f18 = 18; public Point f19 = new Point(1, 2);
    }

    public static class MyMap extends HashMap<String, Object> {}

    interface Body { void write(Hessian2Output out) throws IOException; }

    static final SerializerFactory FACTORY = new SerializerFactory();
    static {
        // Dubbo's BigDecimal: an object of class java.math.BigDecimal with one field, value.
        FACTORY.addFactory(new AbstractSerializerFactory() {
            public Serializer getSerializer(Class cl) {
                return cl == BigDecimal.class ? new StringValueSerializer() : null;
            }
            public Deserializer getDeserializer(Class cl) { return null; }
        });
    }

    static final StringBuilder OUT = new StringBuilder();

    static void vector(String name, Body body, String expect) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Hessian2Output out = new Hessian2Output(bytes);
        out.setSerializerFactory(FACTORY);
        body.write(out);
        out.flush();
        StringBuilder hex = new StringBuilder();
        for (byte b : bytes.toByteArray()) hex.append(String.format("%02x", b & 0xff));
        OUT.append("{\"name\": ").append(json(name)).append(", \"hex\": \"").append(hex)
           .append("\", \"expect\": ").append(expect).append("}\n");
    }

    /** One value written with writeObject; expect described from the value itself. */
    static void value(String name, Object v) throws IOException {
        vector(name, out -> out.writeObject(v), new Describer().describe(v));
    }

    /** Several values written one after another to one output (class defs and refs shared). */
    static void sequence(String name, Object... vs) throws IOException {
        Describer d = new Describer();
        StringBuilder expect = new StringBuilder("{\"seq\": [");
        for (int i = 0; i < vs.length; i++) expect.append(i > 0 ? ", " : "").append(d.describe(vs[i]));
        vector(name, out -> { for (Object v : vs) out.writeObject(v); }, expect.append("]}").toString());
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c >= 0x20 && c < 0x7f) b.append(c);
            else b.append(String.format("\\u%04x", (int) c));  // per UTF-16 unit, lone surrogates too
        }
        return b.append('"').toString();
    }

    /** Java value -> expect JSON, numbering reference slots the way Hessian does. */
    static class Describer {
        final IdentityHashMap<Object, Integer> slots = new IdentityHashMap<>();

        String describe(Object v) {
            if (v == null) return "null";
            if (v instanceof Boolean) return v.toString();
            if (v instanceof Integer || v instanceof Short || v instanceof Byte) return "{\"int\": " + v + "}";
            if (v instanceof Long) return "{\"long\": " + v + "}";
            if (v instanceof Double || v instanceof Float) {
                double d = ((Number) v).doubleValue();
                if (d == 0.0) d = 0.0;  // Caucho writes -0.0 as 0x5b, which reads as +0.0
                return "{\"double\": \"" + Long.toHexString(Double.doubleToRawLongBits(d)) + "\"}";
            }
            if (v instanceof String) return "{\"string\": " + json((String) v) + "}";
            if (v instanceof Character) return "{\"string\": " + json(v.toString()) + "}";
            if (v instanceof byte[]) {
                StringBuilder hex = new StringBuilder();
                for (byte b : (byte[]) v) hex.append(String.format("%02x", b & 0xff));
                return "{\"binary\": \"" + hex + "\"}";
            }
            if (v instanceof Date) return "{\"date\": " + ((Date) v).getTime() + "}";
            Integer seen = slots.get(v);
            if (seen != null) return "{\"ref\": " + seen + "}";
            slots.put(v, slots.size());
            if (v instanceof BigDecimal) return "{\"decimal\": " + json(v.toString()) + "}";
            if (v instanceof Enum) {
                return "{\"enum\": " + json(((Enum<?>) v).getDeclaringClass().getName()) + ", \"name\": "
                    + json(((Enum<?>) v).name()) + "}";
            }
            if (v.getClass().isArray()) {
                List<String> items = new ArrayList<>();
                for (int i = 0; i < Array.getLength(v); i++) items.add(describe(Array.get(v, i)));
                return list(items, json(arrayType(v.getClass())));
            }
            if (v instanceof Collection) {
                List<String> items = new ArrayList<>();
                for (Object item : (Collection<?>) v) items.add(describe(item));
                return list(items, v.getClass() == ArrayList.class ? "null" : json(v.getClass().getName()));
            }
            if (v instanceof Map) {
                StringBuilder b = new StringBuilder("{\"map\": [");
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                    b.append(first ? "" : ", ").append("[").append(describe(e.getKey())).append(", ")
                     .append(describe(e.getValue())).append("]");
                    first = false;
                }
                String type = v.getClass() == HashMap.class ? "null" : json(v.getClass().getName());
                return b.append("], \"type\": ").append(type).append("}").toString();
            }
            StringBuilder b = new StringBuilder("{\"object\": " + json(v.getClass().getName()) + ", \"fields\": [");
            boolean first = true;
            for (Field f : fields(v.getClass())) {
                try {
                    b.append(first ? "" : ", ").append("[").append(json(f.getName())).append(", ")
                     .append(describe(f.get(v))).append("]");
                } catch (IllegalAccessException e) { throw new RuntimeException(e); }
                first = false;
            }
            return b.append("]}").toString();
        }

        static String list(List<String> items, String type) {
            return "{\"list\": [" + String.join(", ", items) + "], \"type\": " + type + "}";
        }
    }

    /** Caucho's field order (UnsafeSerializer.introspect): java.lang-typed fields first. */
    static List<Field> fields(Class<?> cl) {
        List<Field> primitive = new ArrayList<>(), compound = new ArrayList<>();
        for (; cl != null; cl = cl.getSuperclass()) {
            for (Field f : cl.getDeclaredFields()) {
                int m = f.getModifiers();
                if (Modifier.isTransient(m) || Modifier.isStatic(m)) continue;
                f.setAccessible(true);
                Class<?> t = f.getType();
                if (t.isPrimitive() || (t.getName().startsWith("java.lang.") && !t.equals(Object.class)))
                    primitive.add(f);
                else compound.add(f);
            }
        }
        primitive.addAll(compound);
        return primitive;
    }

    /** Caucho's array type names (ArraySerializer / BasicSerializer). */
    static String arrayType(Class<?> cl) {
        if (cl.isArray()) return "[" + arrayType(cl.getComponentType());
        if (cl == String.class) return "string";
        if (cl == Object.class) return "object";
        if (cl.isPrimitive()) return cl.getName();
        return cl.getName();
    }

    static String repeat(String unit, int times) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < times; i++) b.append(unit);
        return b.toString();
    }

    static String text(int units) {  // ASCII with a varying pattern, exactly `units` long
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < units; i++) b.append((char) ('a' + i % 26));
        return b.toString();
    }

    static byte[] binary(int size) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) b[i] = (byte) (i * 7 + 3);
        return b;
    }

    public static void main(String[] args) throws IOException {
        value("null", null);
        value("true", true);
        value("false", false);
        int[] ints = {0, 1, -1, -16, -17, 47, 48, -2048, -2049, 2047, 2048, -262144, -262145,
                      262143, 262144, Integer.MIN_VALUE, Integer.MAX_VALUE};
        for (int i : ints) value("int " + i, i);
        // A boxed Short, Byte or Float on its own is sent by Caucho as a handle object (as a
        // field or array element it is a plain int or double).
        vector("short -300 (ShortHandle)", out -> out.writeObject((short) -300),
            handle("ShortHandle", "{\"int\": -300}"));
        vector("byte 100 (ByteHandle)", out -> out.writeObject((byte) 100),
            handle("ByteHandle", "{\"int\": 100}"));
        long[] longs = {0, -8, -9, 15, 16, -2048, -2049, 2047, 2048, -262144, -262145, 262143, 262144,
                        Integer.MIN_VALUE, Integer.MIN_VALUE - 1L, Integer.MAX_VALUE,
                        Integer.MAX_VALUE + 1L, Long.MIN_VALUE, Long.MAX_VALUE};
        for (long l : longs) value("long " + l, l);
        double[] doubles = {0.0, -0.0, 1.0, -1.0, 2.0, 127.0, -128.0, 128.0, -129.0, 32767.0, -32768.0,
                            32768.0, -32769.0, 0.5, 2.25, -1.5, 1.001, 0.001, 0.0001, 2147483.647,
                            -2147483.648, 2147483.648, 3.14159, 1e10, 1e300, Double.MIN_VALUE,
                            Double.MAX_VALUE, Double.NaN, Double.POSITIVE_INFINITY,
                            Double.NEGATIVE_INFINITY, 65536.5, 0.1};
        for (double d : doubles) value("double " + d, d);
        vector("float 1.1f (FloatHandle)", out -> out.writeObject(1.1f),
            handle("FloatHandle", new Describer().describe((double) 1.1f)));
        vector("float 12.5f (FloatHandle)", out -> out.writeObject(12.5f),
            handle("FloatHandle", new Describer().describe(12.5)));
        long[] dates = {0L, 60000L, 1577836800000L, 1577836800123L, -60000L, -1L, 1700000000000L,
                        60000L * (1L << 31), 60000L * ((1L << 31) - 1), 253402300799999L};
        for (long t : dates) value("date " + t, new Date(t));

        int[] lengths = {0, 1, 31, 32, 1023, 1024, 32767, 32768, 32769, 65536};
        for (int n : lengths) value("string ascii " + n, text(n));
        value("string latin", "h\u00e9llo w\u00f6rld");
        value("string cjk", "\u4e2d\u6587\u5b57\u7b26\u4e32");
        value("string emoji", "smile \ud83d\ude00 and \ud83c\udf89!");
        value("string nul", "a\u0000b");
        value("string lone high surrogate", "x\ud800y");
        value("string lone low surrogate", "\udc00");
        value("string 31 non-ascii", repeat("\u00e9", 31));
        value("string 32 units with emoji", repeat("ab", 15) + "\ud83d\ude00");
        value("string 1024 cjk", repeat("\u4e2d", 1024));
        // 32767 ASCII units, then an emoji: its high surrogate would end the first chunk
        value("string chunk ends before high surrogate", text(32767) + "\ud83d\ude00" + "tail");
        value("string chunk of emoji", repeat("\ud83d\ude00", 16385));  // 32770 units
        value("string chunked mixed", repeat("a\u00e9\u4e2d\ud83d\ude00", 6554) + "z");
        value("char", 'q');

        int[] sizes = {0, 1, 15, 16, 1023, 1024, 4096, 8189, 8190, 32768, 40000};
        for (int n : sizes) value("binary " + n, binary(n));

        value("int[] empty", new int[0]);
        value("int[] 3", new int[] {1, -1, 300});
        value("int[] 8", new int[] {1, 2, 3, 4, 5, 6, 7, 8});
        value("long[] 2", new long[] {1L, 1L << 40});
        value("double[] 2", new double[] {0.5, 1e100});
        value("boolean[] 2", new boolean[] {true, false});
        value("short[] 2", new short[] {1, 2});
        value("String[] 3", new String[] {"a", null, "c"});
        value("Object[] mixed", new Object[] {1, "two", 3L, null, new int[] {4}});
        value("Point[] 2", new Point[] {new Point(1, 2), new Point(3, 4)});
        value("String[][]", new String[][] {{"a"}, {"b", "c"}});
        for (int n : new int[] {0, 1, 7, 8, 20}) {
            ArrayList<Object> list = new ArrayList<>();
            for (int i = 0; i < n; i++) list.add(i);
            value("ArrayList " + n, list);
        }
        value("LinkedList", new LinkedList<>(Arrays.asList("a", "b")));
        value("LinkedList 9", new LinkedList<>(Arrays.asList(1, 2, 3, 4, 5, 6, 7, 8, 9)));
        value("type refs", new ArrayList<>(Arrays.asList(new LinkedList<>(Arrays.asList(1)),
            new LinkedList<>(), new int[] {1}, new int[] {2}, new TreeMap<>(), new TreeMap<>())));
        value("nested lists", new ArrayList<>(Arrays.asList(new ArrayList<>(Arrays.asList(1, 2)),
            new ArrayList<>(Arrays.asList(new ArrayList<>())))));
        vector("variable typed list 0x55", out -> {
            out.writeListBegin(-1, "java.util.LinkedList");
            out.writeInt(1);
            out.writeString("a");
            out.writeListEnd();
        }, "{\"list\": [{\"int\": 1}, {\"string\": \"a\"}], \"type\": \"java.util.LinkedList\", \"variable\": true}");
        vector("variable untyped list 0x57", out -> {
            out.writeListBegin(-1, null);
            out.writeListBegin(-1, null);
            out.writeListEnd();
            out.writeNull();
            out.writeListEnd();
        }, "{\"list\": [{\"list\": [], \"type\": null, \"variable\": true}, null], \"type\": null, \"variable\": true}");

        value("HashMap empty", new HashMap<>());
        HashMap<Object, Object> map = new HashMap<>();
        map.put("a", 1);
        map.put("b", "two");
        map.put(3, 3L);
        map.put("nested", new HashMap<>(Collections.singletonMap("k", "v")));
        value("HashMap", map);
        TreeMap<String, Object> tree = new TreeMap<>();
        tree.put("x", 1);
        tree.put("y", Arrays.asList(1, 2));
        value("TreeMap", tree);
        MyMap mine = new MyMap();
        mine.put("k", "v");
        value("custom Map subclass", mine);
        HashMap<String, String> attachments = new HashMap<>();
        attachments.put("path", "com.example.DemoService");
        attachments.put("interface", "com.example.DemoService");
        attachments.put("version", "1.0.0");
        attachments.put("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        value("Dubbo attachments", attachments);

        value("Point", new Point(1, -2));
        Person alice = new Person();
        alice.name = "Alice"; alice.age = 30; alice.id = 1L << 33; alice.score = 99.5;
        alice.active = true; alice.boxed = null; alice.born = new Date(631152000000L);
        alice.tags = new ArrayList<>(Arrays.asList("a", "b")); alice.attrs = new HashMap<>();
        alice.attrs.put("level", 3); alice.location = new Point(10, 20); alice.color = Color.GREEN;
        alice.balance = new BigDecimal("1234.5600"); alice.photo = binary(20);
        Person bob = new Person();
        bob.name = "Bob"; bob.friend = alice; bob.color = Color.GREEN;
        value("Person nested", bob);
        value("same class twice", new ArrayList<>(Arrays.asList(new Point(1, 2), new Point(3, 4))));
        value("Wide 20 fields", new Wide());
        Node self = new Node();
        self.label = "self"; self.next = self;
        value("object pointing to itself", self);
        Node a = new Node(), b = new Node();
        a.label = "a"; a.next = b; b.label = "b"; b.next = a;
        value("object cycle of two", a);
        ArrayList<Object> loop = new ArrayList<>();
        loop.add("first");
        loop.add(loop);
        value("list containing itself", loop);
        HashMap<String, Object> selfMap = new HashMap<>();
        selfMap.put("me", selfMap);
        value("map containing itself", selfMap);
        ArrayList<Object> shared = new ArrayList<>(Arrays.asList(1, 2));
        value("back-reference", new ArrayList<>(Arrays.asList(shared, shared, new int[] {1})));

        value("enum", Color.RED);
        value("enums with repeat", new ArrayList<>(Arrays.asList(Color.RED, Color.BLUE, Color.RED)));
        value("BigDecimal", new BigDecimal("1.50"));
        value("BigDecimal big", new BigDecimal("-12345678901234567890.123456789"));
        value("BigDecimal exponent", new BigDecimal("1E+3"));
        BigDecimal money = new BigDecimal("0.10");
        value("BigDecimal twice", new ArrayList<>(Arrays.asList(money, money, new BigDecimal("7"))));
        vector("17 classes (O form)", out -> {
            for (int i = 0; i < 18; i++) {
                String cls = ("Cls" + (i % 17)).intern();  // Caucho keys class defs by identity
                if (out.writeObjectBegin(cls) == -1) {
                    out.writeClassFieldLength(1);
                    out.writeString("v");
                    out.writeObjectBegin(cls);
                }
                out.writeInt(i);
            }
        }, seventeen());

        sequence("Dubbo request body", "2.0.2", "com.example.DemoService", "1.0.0", "sayHello",
            "Lcom/example/Point;Ljava/lang/String;", new Point(5, 6), "hi", attachments);
        sequence("shared class defs and refs", new Point(1, 2), shared, new Point(3, 4), shared,
            Color.RED, Color.RED);
        System.out.print(OUT);
    }

    static String handle(String cls, String value) {
        return "{\"object\": \"com.caucho.hessian.io." + cls + "\", \"fields\": [[\"_value\", " + value + "]]}";
    }

    static String seventeen() {
        StringBuilder b = new StringBuilder("{\"seq\": [");
        for (int i = 0; i < 18; i++) {
            b.append(i > 0 ? ", " : "").append("{\"object\": \"Cls").append(i % 17)
             .append("\", \"fields\": [[\"v\", {\"int\": ").append(i).append("}]]}");
        }
        return b.append("]}").toString();
    }
}
