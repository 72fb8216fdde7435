"""Surname readings and compound surnames, which pypinyin cannot know.

pypinyin reads a character by its most common reading (单 dan, 曾 ceng, 区 qu);
as a surname the same character has a fixed, different reading (Shan, Zeng,
Ou). pypinyin has no surname mode, so these tables are hand-written: each entry
is a surname whose surname reading differs from pypinyin's default, or a
compound surname needed to split a full name written in one field (欧阳修 ->
欧阳 + 修). Readings are lower-case toneless pinyin, like the derived keys.
"""

from __future__ import annotations

#: single-character surnames read differently from the character's common reading
SINGLE: dict[str, str] = {
    "单": "shan",
    "曾": "zeng",
    "解": "xie",
    "区": "ou",
    "仇": "qiu",
    "朴": "piao",
    "查": "zha",
    "乐": "yue",
    "盖": "ge",
    "覃": "qin",
    "缪": "miao",
    "翟": "zhai",
    "秘": "bi",
    "种": "chong",
    "折": "she",
    "召": "shao",
    "祭": "zhai",
    "薄": "bo",
    "卜": "bu",
    "都": "du",
    "藏": "zang",
    "员": "yun",
    "繁": "po",
    "能": "nai",
    "便": "pian",
    "句": "gou",
    "阚": "kan",
    "隗": "wei",
    "佴": "nai",
    "粘": "nian",
    "蕃": "pi",
    "乜": "nie",
    "么": "yao",
    "长": "chang",
    "重": "chong",
    "洗": "xian",
    "铅": "yan",
    "角": "jue",
}

#: compound surnames (复姓) with their readings; the readings that differ from pypinyin matter
#: (尉迟 yuchi, 万俟 moqi, 长孙 zhangsun, 单于 chanyu, 乐正 yuezheng, 澹台 tantai, 子车 ziju),
#: the others are listed so that a full name in one field splits at the right place.
COMPOUND: dict[str, str] = {
    "欧阳": "ouyang",
    "司马": "sima",
    "上官": "shangguan",
    "诸葛": "zhuge",
    "东方": "dongfang",
    "皇甫": "huangfu",
    "尉迟": "yuchi",
    "公孙": "gongsun",
    "慕容": "murong",
    "长孙": "zhangsun",
    "宇文": "yuwen",
    "司徒": "situ",
    "夏侯": "xiahou",
    "轩辕": "xuanyuan",
    "令狐": "linghu",
    "端木": "duanmu",
    "西门": "ximen",
    "南宫": "nangong",
    "万俟": "moqi",
    "闻人": "wenren",
    "澹台": "tantai",
    "公羊": "gongyang",
    "赫连": "helian",
    "呼延": "huyan",
    "独孤": "dugu",
    "拓跋": "tuoba",
    "申屠": "shentu",
    "太史": "taishi",
    "钟离": "zhongli",
    "百里": "baili",
    "东郭": "dongguo",
    "单于": "chanyu",
    "濮阳": "puyang",
    "淳于": "chunyu",
    "羊舌": "yangshe",
    "第五": "diwu",
    "左丘": "zuoqiu",
    "司空": "sikong",
    "谷梁": "guliang",
    "巫马": "wuma",
    "公冶": "gongye",
    "宗政": "zongzheng",
    "仲孙": "zhongsun",
    "亓官": "qiguan",
    "司寇": "sikou",
    "鲜于": "xianyu",
    "梁丘": "liangqiu",
    "乐正": "yuezheng",
    "漆雕": "qidiao",
    "颛孙": "zhuansun",
    "公良": "gongliang",
    "段干": "duangan",
    "东门": "dongmen",
    "子车": "ziju",
    "壤驷": "rangsi",
    "微生": "weisheng",
    "公西": "gongxi",
    "完颜": "wanyan",
    "爱新觉罗": "aixinjueluo",
    "叶赫那拉": "yehenala",
}

#: lengths of compound surnames, longest first, for the prefix search
COMPOUND_LENGTHS: tuple[int, ...] = tuple(sorted({len(s) for s in COMPOUND}, reverse=True))


def compound_prefix(text: str) -> str:
    """The compound surname ``text`` starts with, or ""."""
    for length in COMPOUND_LENGTHS:
        if len(text) >= length and text[:length] in COMPOUND:
            return text[:length]
    return ""
