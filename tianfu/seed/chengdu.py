"""Chengdu as the demo data set sees it: business areas, streets, and what its shops are called.

Coordinates are approximate GCJ-02 (what Amap, Tencent and WeChat show), good to a few hundred
metres; street names are real and near their area, so a demo pin lands somewhere familiar. Mall
and shop names are made up from parts: none is meant to be a real brand.
"""

from __future__ import annotations

from dataclasses import dataclass

# Everything generated must lie in this box (the city proper plus its inner suburbs).
LAT_MIN, LAT_MAX = 30.35, 31.0
LNG_MIN, LNG_MAX = 103.6, 104.5

# Where the thin layer of stores outside the business areas may fall: the built-up area
# inside and around the third ring road, up to the inner suburbs.
SPARSE_LAT = (30.45, 30.85)
SPARSE_LNG = (103.85, 104.30)


def _w(words: str) -> tuple[str, ...]:
    return tuple(words.split())


@dataclass(frozen=True, slots=True)
class Street:
    name: str
    district: str


def _on(district: str, names: str) -> tuple[Street, ...]:
    return tuple(Street(name, district) for name in names.split())


@dataclass(frozen=True, slots=True)
class Area:
    # What a chain calls its branch there ("(春熙路店)"); the first is the area's usual name.
    names: tuple[str, ...]
    lat: float
    lng: float
    sigma_m: float
    weight: float
    streets: tuple[Street, ...]
    malls: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.names[0]


AREAS: tuple[Area, ...] = (
    Area(_w("春熙路 太古里 红星路"), 30.6577, 104.0807, 450, 10.0,
         _on("锦江区", "红星路三段 总府路 中纱帽街 大慈寺路 春熙路 东大街"),
         _w("锦华里购物中心 春熙汇 蜀锦天地")),
    Area(_w("天府广场 盐市口"), 30.6574, 104.0661, 500, 7.0,
         _on("锦江区", "人民南路一段") + _on("青羊区", "顺城大街 西御街 人民中路一段"),
         _w("天府时代广场 御街中心")),
    Area(_w("宽窄巷子 人民公园"), 30.6698, 104.0558, 400, 6.0,
         _on("青羊区", "长顺上街 金河路 同仁路 下同仁路 窄巷子 井巷子"),
         _w("少城里 长顺坊")),
    Area(_w("金融城 交子公园"), 30.5780, 104.0640, 700, 6.0,
         _on("高新区", "交子大道 益州大道中段 剑南大道中段 天府大道北段"),
         _w("交子汇 金融城中心")),
    Area(_w("天府软件园 天府三街 世纪城"), 30.5457, 104.0694, 850, 5.0,
         _on("高新区", "天府大道中段 天府三街 天府四街 天府五街"),
         _w("软件园广场 天府三街中心")),
    Area(_w("环球中心 天府二街"), 30.5697, 104.0640, 600, 4.0,
         _on("高新区", "天府大道北段 锦城大道 天府二街"),
         _w("环宇天地 锦城汇")),
    Area(_w("成都东站 东客站"), 30.6296, 104.1417, 800, 4.0,
         _on("成华区", "邛崃山路 迎晖路 东三环路二段"),
         _w("东辰汇 东站枢纽广场")),
    Area(_w("建设路 猛追湾"), 30.6705, 104.1040, 600, 5.0,
         _on("成华区", "建设北路 建设南路 建设路 双林路"),
         _w("建设路商业中心 双林汇")),
    Area(_w("九眼桥 望江"), 30.6420, 104.0890, 600, 4.0,
         _on("锦江区", "滨江东路 水井街") + _on("武侯区", "望江路 新南路"),
         _w("合江汇 望江里")),
    Area(_w("玉林 芳草街"), 30.6315, 104.0565, 500, 5.0,
         _on("武侯区", "玉林北路 玉林西路 芳草街 玉林南路 玉林中路"),
         _w("玉林生活广场")),
    Area(_w("武侯祠 锦里"), 30.6462, 104.0478, 400, 4.0,
         _on("武侯区", "武侯祠大街 洗面桥街 高升桥东路"),
         _w("锦里坊")),
    Area(_w("火车北站 人民北路"), 30.6966, 104.0733, 700, 3.0,
         _on("金牛区", "二环路北二段 人民北路二段 星辉中路"),
         _w("北站商贸城 星辉广场")),
    Area(_w("双流机场 西航港"), 30.5785, 103.9567, 1500, 1.5,
         _on("双流区", "西航港大道 机场路"),
         _w("空港天地")),
    Area(_w("犀浦"), 30.7580, 103.9740, 1000, 2.0,
         _on("郫都区", "百草路 校园路 国宁西路"),
         _w("犀浦生活广场")),
    Area(_w("新都 桂湖"), 30.8230, 104.1590, 1400, 2.0,
         _on("新都区", "新都大道 桂湖中路 马超东路"),
         _w("桂湖里")),
    Area(_w("龙泉驿 龙泉"), 30.5560, 104.2740, 1400, 2.0,
         _on("龙泉驿区", "驿都大道 北泉路 龙平路"),
         _w("驿都汇")),
    Area(_w("温江 光华大道"), 30.6900, 103.8370, 1400, 2.0,
         _on("温江区", "光华大道三段 凤凰北大街 杨柳东路"),
         _w("温江生活广场")),
    Area(_w("麓湖 天府新区 兴隆湖"), 30.4700, 104.0930, 1200, 1.5,
         _on("天府新区", "麓山大道二段 天府大道南段"),
         _w("麓湖水城 湖畔里")),
    Area(_w("华阳"), 30.5000, 104.0600, 1200, 1.5,
         _on("天府新区", "华阳大道 广都大道"),
         _w("华阳广场")),
    Area(_w("大悦城 武侯大道"), 30.6247, 103.9958, 600, 3.0,
         _on("武侯区", "大悦路 武侯大道铁佛段"),
         _w("悦城里")),
    Area(_w("万象城 双桥子"), 30.6565, 104.1030, 600, 3.5,
         _on("成华区", "双庆路 二环路东二段 双桥路"),
         _w("双庆汇")),
    Area(_w("熊猫基地 北湖"), 30.7334, 104.1458, 900, 1.0,
         _on("成华区", "熊猫大道 北湖大道"),
         _w("熊猫里")),
    Area(_w("金沙 光华"), 30.6810, 104.0150, 800, 3.0,
         _on("青羊区", "光华大道一段 金沙遗址路 青羊大道"),
         _w("金沙汇 光华坊")),
    Area(_w("骡马市 太升路"), 30.6720, 104.0720, 450, 3.0,
         _on("青羊区", "太升南路 草市街 人民中路二段"),
         _w("太升广场")),
    Area(_w("双楠 红牌楼"), 30.6300, 104.0300, 700, 3.0,
         _on("武侯区", "佳灵路 龙腾东路 逸都路"),
         _w("双楠汇 红牌楼广场")),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HoursPattern:
    weight: float
    # ("10:30", "14:00"): a shift; a close at or before the open runs past midnight.
    shifts: tuple[tuple[str, str], ...]
    closed_days: tuple[str, ...] = ()
    # Busy on Friday and Saturday nights: close an hour later then.
    late_weekend: bool = False


ALL_DAY: tuple[tuple[str, str], ...] = (("00:00", "24:00"),)
SPLIT_MEALS = (("10:30", "14:00"), ("17:00", "21:30"))

RESTAURANT_HOURS = (
    HoursPattern(5, SPLIT_MEALS),
    HoursPattern(1.5, SPLIT_MEALS, closed_days=("mon",)),
    HoursPattern(2, (("10:30", "21:30"),)),
)


@dataclass(frozen=True, slots=True)
class CategoryProfile:
    code: str  # as inserted by migration 0001
    weight: float  # share among independent (single-store) merchants
    chains: int  # chain brands of this category, of about sixty in all
    chain_size: float  # stores per brand, relative to the other chains
    heads: tuple[str, ...]  # independents' names: head + core, "巷子" + "咖啡"
    cores: tuple[str, ...]
    family: bool  # "陈记", "王嬢嬢" make sense as heads
    # Chains: brand head + tail + core, "蜀味" "老灶" "火锅"; each head names one brand only.
    brand_heads: tuple[str, ...]
    brand_tails: tuple[str, ...]
    brand_cores: tuple[str, ...]
    hours: tuple[HoursPattern, ...]


CATEGORIES: tuple[CategoryProfile, ...] = (
    CategoryProfile(
        "sichuan", 16, 5, 0.8,
        _w("巷子里 老院子 蜀香 川味 老成都 街坊 味道 院坝"),
        _w("川菜馆 家常菜 私房菜 小馆 食堂 苍蝇馆子 中餐厅"), True,
        _w("蜀香 川味 锦城 蓉味 巴蜀 竹园 川府 巴适 蜀韵"), _w("人家 小院 食府 厨房 大院"),
        _w("川菜 家常菜 私房菜"),
        RESTAURANT_HOURS,
    ),
    CategoryProfile(
        "snacks", 20, 8, 1.2,
        _w("老妈 巷口 老街 正宗 街边 街坊 老字号 河边"),
        _w("兔头 钵钵鸡 甜水面 担担面 红油抄手 肥肠粉 牛肉面 蛋烘糕 锅盔 冰粉 凉粉 面馆"), True,
        _w("蓉记 巷口 老成都 少城 街坊 锦里 青石桥 老巷 成都味 小馋"), _w("小吃 老店 食铺 ·"),
        _w("肥肠粉 抄手 面馆 钵钵鸡 锅盔"),
        (HoursPattern(3, (("07:00", "20:00"),)), HoursPattern(3, (("10:00", "22:00"),)),
         HoursPattern(2, (("15:00", "23:30"),)), HoursPattern(1, (("07:00", "14:00"),), ("sun",))),
    ),
    CategoryProfile(
        "hotpot", 12, 8, 1.2,
        _w("老灶 巷子 牛油 老街 江湖 九宫格 坝坝 河边"),
        _w("火锅 老火锅 串串香 冒菜 牛油火锅 鱼火锅"), True,
        _w("蜀味 锦江 川西 蓉韵 巴山 红汤 九宫格 牛油 辣妹 沸腾 渝蓉"),
        _w("老灶 院子 大院 巷子 食府 人家"), _w("火锅 老火锅 串串香 冒菜"),
        (HoursPattern(4, (("11:00", "02:00"),)), HoursPattern(2, (("11:00", "23:00"),)),
         HoursPattern(1.5, (("11:00", "14:30"), ("17:00", "02:00")))),
    ),
    CategoryProfile(
        "bbq", 8, 3, 0.8,
        _w("坝坝 夜猫子 老街 江湖 深夜 烟火 河边"), _w("烧烤 烤串 烤肉 烤脑花 烤鱼"), True,
        _w("夜猫 烟火 江湖 串门 老街"), _w("小馆 大排档 食堂 ·"), _w("烧烤 烤串 烤肉"),
        (HoursPattern(4, (("17:00", "03:00"),)), HoursPattern(2, (("18:00", "02:00"),))),
    ),
    CategoryProfile(
        "food", 9, 4, 1.5,
        _w("街角 小食 一品 好味 三味 半山 禾田"),
        _w("快餐 简餐 西餐厅 日式料理 粤式茶餐厅 饺子馆 湘菜馆 面包房"), False,
        _w("禾田 一品 好味 米香 麦香"), _w("快餐 简餐 小厨 食堂 饺子馆"), _w("·"),
        (*RESTAURANT_HOURS, HoursPattern(2, (("07:30", "21:00"),))),
    ),
    CategoryProfile(
        "tea", 8, 9, 2.5,
        _w("盖碗 竹椅 河边 院坝 闲云 清风 老茶客 慢"), _w("茶馆 茶铺 茶饮 奶茶 柠檬茶 茶社"), False,
        _w("蜜柚 青柠 栀子 桂花 山茶 芋泥 杨梅 白桃 乌龙 荔枝 椰青 青提"),
        _w("小院 物语 时光 日记 工坊 集 研究所"), _w("茶饮 鲜果茶 奶茶 ·"),
        (HoursPattern(5, (("10:00", "22:00"),), late_weekend=True),
         HoursPattern(2, (("09:00", "23:00"),)), HoursPattern(1, (("08:00", "18:00"),))),
    ),
    CategoryProfile(
        "coffee", 6, 6, 2.0,
        _w("巷子 转角 梧桐 阳台 白日梦 一隅 树下 慢 屋顶"),
        _w("咖啡 咖啡馆 咖啡店 咖啡工作室"), False,
        _w("晨光 梧桐 锦瑟 蓉漫 慢岛 拾光 山谷 木心"), _w("里 街 ·"), _w("咖啡 咖啡工坊"),
        (HoursPattern(4, (("08:00", "21:00"),)),
         HoursPattern(2, (("08:30", "22:00"),), late_weekend=True),
         HoursPattern(1, (("10:00", "20:00"),), ("mon",))),
    ),
    CategoryProfile(
        "supermarket", 3, 3, 2.0,
        _w("蓉城 邻里 惠民 百姓 社区 便民 鲜果园"), _w("生活超市 超市 生鲜超市 水果超市"), True,
        _w("蓉城 锦华 天府 惠民 优选 家家 好日子"), _w("·"), _w("超市 生活超市 生鲜超市 量贩"),
        (HoursPattern(5, (("08:00", "22:00"),)), HoursPattern(2, (("07:30", "22:30"),)),
         HoursPattern(0.5, ALL_DAY)),
    ),
    CategoryProfile(
        "convenience", 6, 4, 6.0,
        _w("便民 小区 街角 邻家 楼下"), _w("便利店 小卖部 烟酒便利"), False,
        _w("邻里 天天 锦福 佳家 蓉e 橙子"), _w("·"), _w("便利 便利店"),
        (HoursPattern(8, ALL_DAY), HoursPattern(2, (("07:00", "23:00"),))),
    ),
    CategoryProfile(
        "cinema", 0.2, 2, 0.6,
        _w("光影 胶片 星空"), _w("私人影院 电影院 影院"), False,
        _w("蓉光 锦幕 天幕 光影 银幕"), _w("·"), _w("影城 国际影城 电影城"),
        (HoursPattern(4, (("09:30", "01:00"),)), HoursPattern(1, (("10:00", "24:00"),))),
    ),
    CategoryProfile(
        "hotel", 2.5, 3, 1.0,
        _w("蓉园 熊猫 竹林 花间 听雨 青瓦 竹影"), _w("客栈 民宿 酒店 宾馆 青年旅舍"), False,
        _w("蓉锦 云栖 悦途 竹里 锦绣 栖蓉 星途"), _w("·"), _w("酒店 精品酒店 商务酒店 城市酒店"),
        (HoursPattern(1, ALL_DAY),),
    ),
    CategoryProfile(
        "fitness", 2, 3, 1.0,
        _w("燃脂 力量 蓉体 铁馆 流汗 晨跑"), _w("健身房 瑜伽馆 游泳馆 拳馆 普拉提"), False,
        _w("燃动 熊猫 跃动 力行 型动"), _w("·"), _w("健身 健身中心 运动馆"),
        (HoursPattern(4, (("06:30", "22:30"),)), HoursPattern(1, ALL_DAY),
         HoursPattern(1, (("09:00", "21:30"),), ("mon",))),
    ),
    CategoryProfile(
        "entertainment", 4, 1, 0.8,
        _w("星空 嗨唱 谜境 推理 乐活 蓉乐 好运"),
        _w("KTV 量贩KTV 桌游吧 剧本杀 台球 棋牌室 电玩城"), False,
        _w("星空 欢唱 谜境 乐活"), _w("·"), _w("KTV 量贩KTV 剧本杀"),
        (HoursPattern(3, (("12:00", "02:00"),)), HoursPattern(2, (("13:00", "02:00"),)),
         HoursPattern(1, (("10:00", "22:00"),))),
    ),
    CategoryProfile(
        "beauty", 7, 1, 1.0,
        _w("青丝 锦颜 指尖 发艺 小美 丽人 匠心"), _w("美发 美甲 美容院 发型工作室 美睫"), True,
        _w("锦颜 青丝 蔓"), _w("·"), _w("美发 美容 造型"),
        (HoursPattern(4, (("10:00", "21:30"),)), HoursPattern(1, (("09:30", "21:00"),), ("tue",))),
    ),
)  # fmt: skip

# "陈记", "王嬢嬢" (Sichuanese for auntie), "老李家": how Chengdu names a family business.
SURNAMES = _w("陈 王 李 张 刘 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 罗 高 林 唐 邓 曾 彭")
FAMILY_FORMS = ("{}记", "{}姐", "{}嬢嬢", "老{}家", "{}哥", "{}师傅")

# A "·" in brand parts stands for nothing: "邻里便利店", not "邻里·便利店".
EMPTY_PART = "·"

# (value, weight) mixes.
MERCHANT_STATUSES = (("approved", 90.0), ("pending", 7.0), ("suspended", 3.0))
STORE_STATUSES = (("open", 95.0), ("temporarily_closed", 3.0), ("closed", 2.0))
MALL_FLOORS = (("负一楼", 2), ("1楼", 3), ("2楼", 3), ("3楼", 3), ("4楼", 2), ("5楼", 1))
