"""Word lists of the synthetic LSPC-style generator: brands, nouns, adjectives, sizes, marketing words in
seven languages (written for this project)."""

from __future__ import annotations

import numpy as np

LABEL_NAMES = ["Automotive", "Baby", "Books", "Clothing", "Jewelry", "Shoes"]
LANGUAGES = ("en", "de", "fr", "nl", "it", "es", "ja")
LANGUAGE_P = (0.88, 0.035, 0.025, 0.015, 0.015, 0.015, 0.015)
LABEL_P = (0.16, 0.13, 0.18, 0.22, 0.14, 0.17)
NOISE_RATE = 0.04  # share of clusters titled with a neighbouring category's vocabulary
_NEIGHBOUR = (1, 3, 1, 5, 3, 3)  # Automotive->Baby (car seats), Baby->Clothing, Books->Baby, ...
_SIZE_P = 1.0 / np.arange(1, 51) ** 2.0  # offers per cluster: truncated Zipf, many singletons
_ORDER = {"en": (0, 0), "de": (1, 0), "fr": (1, 1), "nl": (1, 0), "it": (1, 1), "es": (1, 1), "ja": (0, 1)}
_CARS = (
    "VW Golf 7|VW Polo 6R|BMW 320d E90|BMW X5 F15|Audi A4 B8|Audi A3 8V|Ford Focus MK3|Ford Fiesta|"
    "Toyota Corolla|Toyota Yaris|Honda Civic|Opel Astra J|Opel Corsa D|Peugeot 208|Renault Clio IV|Fiat 500|"
    "Nissan Qashqai|Mercedes W205|Skoda Octavia|Seat Leon|Volvo XC60|Mazda 3|Kia Sportage|Hyundai i30"
).split("|")
_AUTO_SPEC = {  # noun index (lists are parallel across languages) -> plausible technical spec
    1: "Ø 280mm|Ø 312mm|Ø 256mm|Ø 300mm",
    2: "600mm + 450mm|530mm + 480mm|650mm + 400mm|550mm",
    3: "H7 12V 55W|H4 12V 60/55W|H1|H11|D1S|W5W T10|9005 HB3",
    4: "H8|H11|H16|2000LM|6000K",
    9: "12V 60Ah|12V 74Ah 680A|12V 95Ah|12V 44Ah",
    17: "5W-30 5L|5W-40 1L|0W-20 4L|10W-40 5L",
}
_BRANDS = [
    s.split("|")
    for s in (
        "Bosch|Osram|Philips|Hella|Valeo|Febi Bilstein|Brembo|Castrol|Mobil 1|Michelin|Thule|Sonax|Meguiar's|"
        "Ridex|Liqui Moly|Mann-Filter|NGK|Varta|Ring|Nextbase|TRW|ATE|Walser|Continental",
        "Pampers|Huggies|Carter's|Chicco|Philips Avent|MAM|NUK|Tommee Tippee|Fisher-Price|Disney|Sterntaler|"
        "Maxi-Cosi|Britax Römer|Cybex|Joie|Bugaboo|Ergobaby|Lässig|Petit Bateau|Hauck|BabyBjörn|Nuby|Noppies",
        "Penguin|HarperCollins|Vintage|Bloomsbury|Suhrkamp|dtv|Gallimard|Folio|Mondadori|Planeta|Ravensburger|"
        "Disney|Usborne|O'Reilly|Rheinwerk|Dorling Kindersley|講談社|新潮社",
        "Levi's|Tommy Hilfiger|H&M|Zara|Adidas|Nike|Puma|Esprit|s.Oliver|Calvin Klein|Lacoste|Ralph Lauren|"
        "Superdry|Jack & Jones|Only|Mango|Uniqlo|Mustang|Tom Tailor|Vero Moda|Columbia|The North Face|Disney",
        "Pandora|Swarovski|Thomas Sabo|Fossil|Michael Kors|Tommy Hilfiger|Calvin Klein|Guess|Esprit|Amor|"
        "Coeur de Lion|Engelsrufer|Tiffany & Co.|Ti Sento|Morellato|Pilgrim|Skagen|Elli|Bering|Nomination",
        "Nike|Adidas|Puma|Skechers|Clarks|Ecco|New Balance|Converse|Vans|Geox|Asics|Dr. Martens|Tommy Hilfiger|"
        "Lacoste|Birkenstock|Timberland|Tamaris|Rieker|Crocs|Salomon|Hush Puppies|UGG|Reebok|Fila",
    )
]
_CFIELDS = ("col", "gen", "fit", "with", "by", "pack", "age", "size", "shoe", "ring", "fmt", "extra", "first", "last")
_COMMON_RAW = {
    "en": "Black|White|Navy Blue|Red|Grey|Beige|Pink|Green|Brown|Blue|Burgundy|Khaki|Silver|Gold;"
    "Men's|Women's|Kids|Unisex|Boys|Girls;for {}|fits {};with {};by {}|{};Pack of {}|{}-Pack|Set of {}|{} Pcs;"
    "{}-{} Months|{}-{}M;Size {}|{};UK {u}|Size {u} UK|EU {e}|US {s};Ring Size {l}|Size {l};"
    "Paperback|Hardcover|Kindle Edition|Audiobook|Large Print;NEW|Free Shipping|Top Quality|Best Seller|2024|"
    "Fast Delivery|Genuine|Sale|UK Stock|Gift Idea|Official|Free P&P;James|Mary|Robert|Sarah|David|Emily|"
    "Michael|Laura|Daniel|Anna|Peter|Claire;Smith|Johnson|Brown|Taylor|Miller|Wilson|Clarke|Walker|Evans|Hughes",
    "de": "schwarz|weiß|blau|rot|grau|beige|rosa|grün|braun|dunkelblau|bordeaux|khaki|silber|gold;"
    "Herren|Damen|Kinder|Unisex|Jungen|Mädchen;für {}|passend für {};mit {};von {}|{};"
    "{}er Pack|{} Stück|{}er Set|{} Stk.;{}-{} Monate;Gr. {}|Größe {};Gr. {e}|EU {e}|Größe {e};"
    "Ringgröße {r}|Gr. {r};Taschenbuch|Gebundene Ausgabe|Kindle Ausgabe|Hörbuch|Broschiert;NEU|"
    "Versandkostenfrei|Top Qualität|Bestseller|2024|Schneller Versand|Original|Angebot|Markenware|OVP;"
    "Thomas|Anna|Michael|Katrin|Stefan|Julia|Andreas|Sabine|Markus|Lena;Müller|Schmidt|Schneider|Fischer|"
    "Weber|Meyer|Wagner|Becker|Hoffmann|Schulz",
    "fr": "noir|blanc|bleu marine|rouge|gris|beige|rose|vert|marron|bleu|bordeaux|kaki|argent|doré;"
    "homme|femme|enfant|mixte|garçon|fille;pour {}|compatible {};avec {};de {}|{};"
    "lot de {}|pack de {}|{} pièces|x{};{}-{} mois;taille {}|T{};pointure {e}|{e} EU|T{e};taille {r}|T{r};"
    "Broché|Relié|Format Kindle|Livre audio|Poche;NOUVEAU|Livraison gratuite|Qualité supérieure|"
    "Meilleure vente|2024|Expédition rapide|Original|Promo|Idée cadeau|Neuf;Jean|Marie|Pierre|Sophie|"
    "Nicolas|Claire|Julien|Camille|Antoine|Léa;Martin|Bernard|Dubois|Moreau|Laurent|Simon|Michel|Leroy|Roux",
    "nl": "zwart|wit|blauw|rood|grijs|beige|roze|groen|bruin|donkerblauw|bordeaux|khaki|zilver|goud;"
    "heren|dames|kinderen|unisex|jongens|meisjes;voor {}|geschikt voor {};met {};door {}|{};"
    "{} stuks|set van {}|{}-pack|{} st.;{}-{} maanden;maat {}|mt. {};maat {e}|EU {e};ringmaat {r}|maat {r};"
    "Paperback|Gebonden|E-book|Luisterboek|Pocket;NIEUW|Gratis verzending|Topkwaliteit|Bestseller|2024|"
    "Snelle levering|Origineel|Uitverkoop|Cadeau-idee|Morgen in huis;Jan|Anne|Pieter|Lotte|Daan|Sanne|Bram|"
    "Eva|Thijs|Femke;de Vries|Jansen|Bakker|Visser|Smit|de Jong|Mulder|de Boer|Dekker|Peters",
    "it": "nero|bianco|blu|rosso|grigio|beige|rosa|verde|marrone|blu navy|bordeaux|kaki|argento|oro;"
    "uomo|donna|bambino|unisex|ragazzo|ragazza;per {}|compatibile con {};con {};di {}|{};"
    "confezione da {}|{} pezzi|set da {}|{} pz;{}-{} mesi;taglia {}|tg. {};numero {e}|EU {e}|{e} EU;"
    "misura {r}|mis. {r};Copertina flessibile|Copertina rigida|Formato Kindle|Audiolibro|Tascabile;NUOVO|"
    "Spedizione gratuita|Alta qualità|Più venduto|2024|Spedizione veloce|Originale|Offerta|Idea regalo|"
    "Made in Italy;Marco|Giulia|Luca|Francesca|Andrea|Chiara|Matteo|Sara|Paolo|Elena;Rossi|Russo|Ferrari|"
    "Esposito|Bianchi|Romano|Colombo|Ricci|Marino|Greco",
    "es": "negro|blanco|azul marino|rojo|gris|beige|rosa|verde|marrón|azul|burdeos|caqui|plata|dorado;"
    "hombre|mujer|niño|unisex|niños|niña;para {}|compatible con {};con {};de {}|{};"
    "pack de {}|{} unidades|set de {}|{} uds;{}-{} meses;talla {}|T. {};talla {e}|EU {e}|número {e};"
    "talla {r}|medida {r};Tapa blanda|Tapa dura|Versión Kindle|Audiolibro|Libro de bolsillo;NUEVO|"
    "Envío gratis|Alta calidad|Más vendido|2024|Envío rápido|Original|Oferta|Idea regalo|Garantía 2 años;"
    "Carlos|María|Javier|Lucía|Pablo|Carmen|Daniel|Laura|Sergio|Elena;García|Fernández|López|Martínez|"
    "Sánchez|Pérez|Gómez|Ruiz|Díaz|Moreno",
    "ja": "ブラック|ホワイト|ネイビー|レッド|グレー|ベージュ|ピンク|グリーン|ブラウン|ブルー|黒|白|シルバー|ゴールド;"
    "メンズ|レディース|キッズ|ユニセックス|男の子|女の子;{}対応|{}用;{}付き;{} 著|{}/著|{};"
    "{}個セット|{}枚入り|{}本セット|{}点セット;{}-{}ヶ月;{}サイズ|サイズ{};{c}cm|{c} cm;{j}号;"
    "文庫|単行本|Kindle版|新書|大型本;【送料無料】|【正規品】|【国内正規品】|あす楽|【2024年モデル】|ポイント10倍|"
    "【公式】|即納|ギフト|【楽天1位】;太郎|花子|健|美咲|翔|陽子|大輔|由美|誠|彩;田中|佐藤|鈴木|高橋|渡辺|伊藤|"
    "山本|中村|小林|加藤",
}
# Per category and language: "nouns;adjectives;materials[;stones]" (Books: "nouns;adjectives;topics;templates").
_VOCAB_RAW = {
    "Automotive": {
        "en": "Brake Pads|Brake Discs|Wiper Blades|Headlight Bulbs|LED Fog Lights|Oil Filter|Air Filter|"
        "Cabin Filter|Spark Plugs|Car Battery|Floor Mats|Seat Covers|Roof Box|Phone Holder|Dash Cam|"
        "Jump Starter|Tyre Inflator|Engine Oil|Car Wax|Steering Wheel Cover|Roof Bars|Tow Bar;Front|Rear|"
        "Heavy Duty|Universal|Premium|All-Weather|Xenon White|Anti-Theft|Magnetic|Wireless|Fully Synthetic|"
        "Waterproof;Rubber|Ceramic|Aluminium|Leather|Carbon Fibre|Stainless Steel|Fabric",
        "de": "Bremsbeläge|Bremsscheiben|Scheibenwischer|Glühlampen|LED Nebelscheinwerfer|Ölfilter|Luftfilter|"
        "Innenraumfilter|Zündkerzen|Autobatterie|Fußmatten|Sitzbezüge|Dachbox|Handyhalterung|Dashcam|"
        "Starthilfe Powerbank|Reifenkompressor|Motoröl|Autowachs|Lenkradbezug|Dachträger|Anhängerkupplung;"
        "vorne|hinten|verstärkt|universal|Premium|Allwetter|Xenon-weiß|abschließbar|magnetisch|kabellos|"
        "vollsynthetisch|wasserdicht;Gummi|Keramik|Aluminium|Leder|Carbon|Edelstahl|Stoff",
        "fr": "Plaquettes de frein|Disques de frein|Balais d'essuie-glace|Ampoules de phare|Antibrouillards LED|"
        "Filtre à huile|Filtre à air|Filtre d'habitacle|Bougies d'allumage|Batterie voiture|Tapis de sol|"
        "Housses de siège|Coffre de toit|Support téléphone|Caméra embarquée|Booster de démarrage|"
        "Compresseur pneus|Huile moteur|Cire voiture|Couvre-volant|Barres de toit|Attelage;avant|arrière|"
        "renforcé|universel|premium|toutes saisons|blanc xénon|antivol|magnétique|sans fil|100% synthèse|"
        "étanche;en caoutchouc|en céramique|en aluminium|en cuir|en fibre de carbone|en acier inoxydable|en tissu",
        "nl": "Remblokken|Remschijven|Ruitenwissers|Koplamp lampen|LED mistlampen|Oliefilter|Luchtfilter|"
        "Interieurfilter|Bougies|Accu|Automatten|Stoelhoezen|Dakkoffer|Telefoonhouder|Dashcam|Jumpstarter|"
        "Bandenpomp|Motorolie|Autowas|Stuurhoes|Dakdragers|Trekhaak;voor|achter|zwaar|universeel|premium|"
        "all-weather|xenon wit|afsluitbaar|magnetisch|draadloos|volsynthetisch|waterdicht;rubber|keramisch|"
        "aluminium|leer|carbon|rvs|stof",
        "it": "Pastiglie freno|Dischi freno|Spazzole tergicristallo|Lampadine fari|Fendinebbia LED|Filtro olio|"
        "Filtro aria|Filtro abitacolo|Candele|Batteria auto|Tappetini auto|Coprisedili|Box tetto|"
        "Supporto cellulare|Dash cam|Avviatore di emergenza|Compressore pneumatici|Olio motore|Cera auto|"
        "Coprivolante|Barre portatutto|Gancio traino;anteriori|posteriori|rinforzato|universale|premium|"
        "4 stagioni|bianco xeno|antifurto|magnetico|wireless|sintetico|impermeabile;in gomma|in ceramica|"
        "in alluminio|in pelle|in fibra di carbonio|in acciaio inox|in tessuto",
        "es": "Pastillas de freno|Discos de freno|Escobillas limpiaparabrisas|Bombillas faros|"
        "Faros antiniebla LED|Filtro de aceite|Filtro de aire|Filtro de habitáculo|Bujías|Batería de coche|"
        "Alfombrillas|Fundas de asiento|Cofre de techo|Soporte móvil|Cámara para coche|Arrancador de baterías|"
        "Compresor de aire|Aceite de motor|Cera para coche|Funda de volante|Barras de techo|Enganche;delanteras|"
        "traseras|reforzado|universal|premium|todo tiempo|blanco xenón|antirrobo|magnético|inalámbrico|"
        "sintético|impermeable;de goma|de cerámica|de aluminio|de cuero|de fibra de carbono|de acero inoxidable",
        "ja": "ブレーキパッド|ブレーキローター|ワイパーブレード|ヘッドライトバルブ|LEDフォグランプ|オイルフィルター|"
        "エアフィルター|エアコンフィルター|スパークプラグ|カーバッテリー|フロアマット|シートカバー|ルーフボックス|"
        "スマホホルダー|ドライブレコーダー|ジャンプスターター|空気入れ|エンジンオイル|カーワックス|ハンドルカバー|"
        "ルーフキャリア|ヒッチメンバー;フロント|リア|強化|汎用|プレミアム|全天候|ホワイト|盗難防止|マグネット式|"
        "ワイヤレス|全合成|防水;ゴム|セラミック|アルミ|レザー|カーボン|ステンレス|布",
    },
    "Baby": {
        "en": "Baby Bodysuit|Sleepsuit|Romper|Baby Sleeping Bag|Swaddle Blanket|Muslin Squares|Baby Bottles|"
        "Dummy|Teether|Nappies|Baby Wipes|Bibs|High Chair|Baby Carrier|Pushchair|Car Seat|Baby Monitor|"
        "Play Mat|Cot Bumper|Baby Booties|Changing Bag;Newborn|Anti-Colic|Soft|Organic|Foldable|Portable|"
        "Adjustable|Sensory|Lightweight|ISOFIX|Hypoallergenic;Organic Cotton|Muslin|Bamboo|BPA-Free Silicone|"
        "Jersey Cotton|Merino Wool|Plush",
        "de": "Baby Body|Strampler|Spieler|Babyschlafsack|Pucktuch|Mullwindeln|Babyflaschen|Schnuller|Beißring|"
        "Windeln|Feuchttücher|Lätzchen|Hochstuhl|Babytrage|Kinderwagen|Kindersitz|Babyphone|Krabbeldecke|"
        "Nestchen|Krabbelschuhe|Wickeltasche;Neugeborene|Anti-Kolik|weich|Bio|faltbar|tragbar|verstellbar|"
        "sensorisch|leicht|ISOFIX|hautfreundlich;Bio-Baumwolle|Musselin|Bambus|BPA-freies Silikon|Jersey|"
        "Merinowolle|Plüsch",
        "fr": "Body bébé|Pyjama bébé|Barboteuse|Gigoteuse|Lange d'emmaillotage|Langes en mousseline|Biberons|"
        "Tétine|Anneau de dentition|Couches|Lingettes bébé|Bavoirs|Chaise haute|Porte-bébé|Poussette|"
        "Siège auto|Babyphone|Tapis d'éveil|Tour de lit|Chaussons bébé|Sac à langer;nouveau-né|anti-colique|"
        "doux|bio|pliable|portable|réglable|sensoriel|léger|ISOFIX|hypoallergénique;en coton bio|"
        "en mousseline|en bambou|en silicone sans BPA|en jersey de coton|en laine mérinos|en peluche",
        "nl": "Rompertje|Boxpakje|Speelpakje|Slaapzak baby|Inbakerdoek|Hydrofiele doeken|Babyflessen|Fopspeen|"
        "Bijtring|Luiers|Billendoekjes|Slabbetjes|Kinderstoel|Draagzak|Kinderwagen|Autostoel|Babyfoon|"
        "Speelkleed|Bedbumper|Babyslofjes|Luiertas;newborn|anti-krampjes|zacht|biologisch|opvouwbaar|draagbaar|"
        "verstelbaar|sensorisch|lichtgewicht|ISOFIX|hypoallergeen;biologisch katoen|mousseline|bamboe|"
        "BPA-vrije siliconen|tricot katoen|merinowol|pluche",
        "it": "Body neonato|Tutina|Pagliaccetto|Sacco nanna|Copertina per fasciare|Teli in mussola|Biberon|"
        "Ciuccio|Massaggiagengive|Pannolini|Salviette umidificate|Bavaglini|Seggiolone|Marsupio|Passeggino|"
        "Seggiolino auto|Baby monitor|Tappeto gioco|Paracolpi lettino|Scarpine neonato|Borsa fasciatoio;"
        "neonato|anti-colica|morbido|biologico|pieghevole|portatile|regolabile|sensoriale|leggero|ISOFIX|"
        "anallergico;in cotone biologico|in mussola|in bambù|in silicone senza BPA|in jersey di cotone|"
        "in lana merino|in peluche",
        "es": "Body bebé|Pijama bebé|Pelele|Saco de dormir|Manta arrullo|Muselinas|Biberones|Chupete|Mordedor|"
        "Pañales|Toallitas|Baberos|Trona|Mochila portabebés|Cochecito|Silla de coche|Vigilabebés|"
        "Alfombra de juegos|Protector de cuna|Patucos|Bolso cambiador;recién nacido|anticólicos|suave|"
        "orgánico|plegable|portátil|ajustable|sensorial|ligero|ISOFIX|hipoalergénico;de algodón orgánico|"
        "de muselina|de bambú|de silicona sin BPA|de punto de algodón|de lana merino|de peluche",
        "ja": "ベビー ロンパース|カバーオール|ベビー肌着|スリーパー|おくるみ|ガーゼケット|哺乳瓶|おしゃぶり|歯固め|"
        "紙おむつ|おしりふき|スタイ|ベビーチェア|抱っこ紐|ベビーカー|チャイルドシート|ベビーモニター|プレイマット|"
        "ベッドガード|ベビーシューズ|マザーズバッグ;新生児|男女兼用|やわらか|オーガニック|折りたたみ|持ち運び|"
        "調節可能|知育|軽量|ISOFIX|低刺激;オーガニックコットン|ガーゼ|竹繊維|シリコン BPAフリー|綿100%|メリノウール",
    },
    "Books": {
        "en": "Garden|River|House|Letters|Secrets|Night|Sea|Silence|Daughter|Road|Winter|Mountain|Island|"
        "Shadows|Kingdom|Promise;Silent|Last|Lost|Hidden|Forgotten|Broken|Little|Golden|Midnight|Distant|"
        "Secret|Wild;Python Programming|Mindfulness|Gardening|Italian Cooking|Photography|Investing|"
        "Machine Learning|Yoga|World History|Baking|Negotiation|Watercolour Painting;The {a} {n}|"
        "The {a} {n}: A Novel|{t} for Beginners|The Art of {t}|A Short History of {t}|The {n} of the {n2}|"
        "{t}: The Complete Guide|The {a} {n} (Book {k})",
        "de": "Tage|Nächte|Wasser|Träume|Jahre|Stimmen|Schatten|Spuren|Wege|Geheimnisse|Briefe|Sommer;Dunkle|"
        "Verlorene|Stille|Letzte|Kalte|Helle|Vergessene|Weiße|Ferne|Wilde;Gartengestaltung|Fotografie|Yoga|"
        "Python-Programmierung|Backen|Geldanlage|Achtsamkeit|Italienische Küche|Aquarellmalerei;{a} {n}|"
        "{a} {n}: Roman|{t} für Einsteiger|Das große Buch: {t}|Praxisbuch {t}|{t}: Grundlagen und Praxis|"
        "{a} {n} (Band {k})",
        "fr": "jours|secrets|souvenirs|rêves|chemins|silences|enfants|murmures|hivers|étés;perdus|oubliés|"
        "interdits|éternels|lointains|tranquilles|brisés|cachés;cuisine|photographie|jardinage|méditation|"
        "pâtisserie|programmation|yoga|peinture|finance;Les {n} {a}|Les {n} {a} : roman|{t} pour les nuls|"
        "Le grand livre de {t}|Petit traité de {t}|Les {n} {a} (Tome {k})",
        "nl": "dagen|geheimen|dromen|herinneringen|wegen|stemmen|schaduwen|brieven|zomers|nachten;verloren|"
        "vergeten|laatste|stille|donkere|koude|lange|verborgen;koken|fotografie|tuinieren|meditatie|bakken|"
        "programmeren|beleggen|yoga|schilderen;De {a} {n}|De {a} {n}: roman|{t} voor beginners|Handboek {t}|"
        "Alles over {t}|De {a} {n} (deel {k})",
        "it": "giorni|segreti|sogni|ricordi|silenzi|passi|venti|nomi|figli|viaggi;perduti|dimenticati|lontani|"
        "proibiti|eterni|tranquilli|nascosti|spezzati;cucina|fotografia|giardinaggio|meditazione|pasticceria|"
        "programmazione|yoga|pittura|finanza;I {n} {a}|I {n} {a}. Romanzo|Manuale di {t}|"
        "{t} per principianti|Corso completo di {t}|I {n} {a} (Vol. {k})",
        "es": "días|secretos|sueños|recuerdos|caminos|silencios|vientos|inviernos|años|nombres;perdidos|"
        "olvidados|prohibidos|eternos|lejanos|tranquilos|ocultos|rotos;cocina|fotografía|jardinería|"
        "meditación|repostería|programación|yoga|pintura|finanzas;Los {n} {a}|Los {n} {a}: novela|"
        "{t} para principiantes|Manual de {t}|El gran libro de {t}|Los {n} {a} (Volumen {k})",
        "ja": "時間|海|夏|記憶|約束|街|森|物語|手紙|季節;失われた|静かな|最後の|遠い|忘れられた|青い|眠れない|小さな;"
        "料理|写真|園芸|瞑想|投資|プログラミング|ヨガ|英会話|水彩画;{a}{n}|{a}{n} 上|{t}入門|はじめての{t}|"
        "{t}の教科書|図解 {t}|{a}{n} ({k})",
    },
    "Clothing": {
        "en": "T-Shirt|Polo Shirt|Hoodie|Sweatshirt|Jeans|Chinos|Dress|Maxi Dress|Blouse|Cardigan|Jumper|"
        "Puffer Jacket|Parka|Blazer|Leggings|Joggers|Shorts|Skirt|Pyjama Set|Swimsuit|Fleece Jacket|Winter Coat;"
        "Slim Fit|Regular Fit|Oversized|Long Sleeve|Short Sleeve|V-Neck|Crew Neck|High Waist|Stretch|Casual|"
        "Quilted|Hooded|Vintage;Cotton|Organic Cotton|Polyester|Merino Wool|Linen|Denim|Fleece|Viscose|Cashmere",
        "de": "T-Shirt|Poloshirt|Kapuzenpullover|Sweatshirt|Jeans|Chinohose|Kleid|Maxikleid|Bluse|Strickjacke|"
        "Pullover|Steppjacke|Parka|Blazer|Leggings|Jogginghose|Shorts|Rock|Schlafanzug|Badeanzug|Fleecejacke|"
        "Wintermantel;Slim Fit|Regular Fit|oversize|langarm|kurzarm|V-Ausschnitt|Rundhals|High Waist|Stretch|"
        "lässig|gesteppt|mit Kapuze|Basic;Baumwolle|Bio-Baumwolle|Polyester|Merinowolle|Leinen|Denim|Fleece|"
        "Viskose|Kaschmir",
        "fr": "T-shirt|Polo|Sweat à capuche|Sweat-shirt|Jean|Pantalon chino|Robe|Robe longue|Chemisier|Gilet|"
        "Pull|Doudoune|Parka|Blazer|Legging|Pantalon de jogging|Short|Jupe|Pyjama|Maillot de bain|"
        "Veste polaire|Manteau d'hiver;slim|coupe droite|oversize|manches longues|manches courtes|col V|"
        "col rond|taille haute|stretch|décontracté|matelassé|à capuche;en coton|en coton bio|en polyester|"
        "en laine mérinos|en lin|en denim|en polaire|en viscose|en cachemire",
        "nl": "T-shirt|Poloshirt|Hoodie|Sweater|Spijkerbroek|Chino|Jurk|Maxi-jurk|Blouse|Vest|Trui|"
        "Gewatteerde jas|Parka|Colbert|Legging|Joggingbroek|Korte broek|Rok|Pyjama|Badpak|Fleecevest|Winterjas;"
        "slim fit|regular fit|oversized|lange mouwen|korte mouwen|V-hals|ronde hals|hoge taille|stretch|casual|"
        "gewatteerd|met capuchon;katoen|biologisch katoen|polyester|merinowol|linnen|denim|fleece|viscose|kasjmier",
        "it": "T-shirt|Polo|Felpa con cappuccio|Felpa|Jeans|Pantaloni chino|Vestito|Abito lungo|Camicetta|"
        "Cardigan|Maglione|Piumino|Parka|Blazer|Leggings|Pantaloni della tuta|Pantaloncini|Gonna|Pigiama|"
        "Costume da bagno|Giacca in pile|Cappotto invernale;slim fit|regular fit|oversize|maniche lunghe|"
        "maniche corte|scollo a V|girocollo|vita alta|elasticizzato|casual|trapuntato|con cappuccio;in cotone|"
        "in cotone biologico|in poliestere|in lana merino|in lino|in denim|in pile|in viscosa|in cashmere",
        "es": "Camiseta|Polo|Sudadera con capucha|Sudadera|Vaqueros|Pantalón chino|Vestido|Vestido largo|Blusa|"
        "Cárdigan|Jersey|Chaqueta acolchada|Parka|Blazer|Leggings|Pantalón de chándal|Pantalones cortos|Falda|"
        "Pijama|Bañador|Chaqueta polar|Abrigo de invierno;slim fit|regular fit|oversize|manga larga|manga corta|"
        "cuello en V|cuello redondo|talle alto|elástico|casual|acolchado|con capucha;de algodón|"
        "de algodón orgánico|de poliéster|de lana merino|de lino|de denim|de forro polar|de viscosa|de cachemira",
        "ja": "Tシャツ|ポロシャツ|パーカー|トレーナー|ジーンズ|チノパン|ワンピース|ロングワンピース|ブラウス|"
        "カーディガン|セーター|ダウンジャケット|モッズコート|テーラードジャケット|レギンス|ジョガーパンツ|"
        "ショートパンツ|スカート|パジャマ|水着|フリースジャケット|コート;スリム|レギュラーフィット|オーバーサイズ|長袖|"
        "半袖|Vネック|クルーネック|ハイウエスト|ストレッチ|カジュアル|大きいサイズ|無地;綿100%|オーガニックコットン|"
        "ポリエステル|メリノウール|リネン|デニム|フリース|カシミヤ",
    },
    "Jewelry": {
        "en": "Pendant Necklace|Chain Necklace|Stud Earrings|Hoop Earrings|Drop Earrings|Engagement Ring|"
        "Eternity Ring|Signet Ring|Charm Bracelet|Bangle|Tennis Bracelet|Anklet|Brooch|Cufflinks|Locket|Choker|"
        "Charm|Solitaire Ring;Heart|Infinity|Personalised|Minimalist|Vintage|Adjustable|Stackable|Handmade|"
        "Hypoallergenic|Layered|Birthstone;925 Sterling Silver|18K Gold Plated|Stainless Steel|14K White Gold|"
        "9ct Yellow Gold|Rose Gold Plated|Titanium|Platinum;Cubic Zirconia|Swarovski Crystals|Freshwater Pearl|"
        "Diamond|Sapphire|Amethyst|Opal|Emerald",
        "de": "Halskette mit Anhänger|Kette|Ohrstecker|Creolen|Ohrhänger|Verlobungsring|Memoire Ring|Siegelring|"
        "Bettelarmband|Armreif|Tennisarmband|Fußkettchen|Brosche|Manschettenknöpfe|Medaillon|Choker|"
        "Charm-Anhänger|Solitärring;Herz|Unendlichkeit|personalisiert|minimalistisch|Vintage|verstellbar|"
        "stapelbar|handgemacht|hypoallergen|Geburtsstein;925 Sterling Silber|18K vergoldet|Edelstahl|"
        "585 Weißgold|333 Gelbgold|rosévergoldet|Titan|Platin;Zirkonia|Swarovski Kristallen|Süßwasserperle|"
        "Diamant|Saphir|Amethyst|Opal|Smaragd",
        "fr": "Collier pendentif|Chaîne|Boucles d'oreilles puces|Créoles|Boucles d'oreilles pendantes|"
        "Bague de fiançailles|Alliance|Chevalière|Bracelet à breloques|Jonc|Bracelet tennis|Chaîne de cheville|"
        "Broche|Boutons de manchette|Médaillon|Ras de cou|Breloque|Bague solitaire;cœur|infini|personnalisé|"
        "minimaliste|vintage|réglable|empilable|fait main|hypoallergénique|fantaisie;en argent 925|"
        "plaqué or 18 carats|en acier inoxydable|en or blanc 14 carats|en or jaune 9 carats|plaqué or rose|"
        "en titane|en platine;oxyde de zirconium|cristaux Swarovski|perle d'eau douce|diamant|saphir|"
        "améthyste|opale|émeraude",
        "nl": "Hanger met ketting|Ketting|Oorknopjes|Creolen|Oorhangers|Verlovingsring|Aanschuifring|Zegelring|"
        "Bedelarmband|Armband|Tennisarmband|Enkelbandje|Broche|Manchetknopen|Medaillon|Choker|Bedel|"
        "Solitair ring;hart|oneindig|gepersonaliseerd|minimalistisch|vintage|verstelbaar|stapelbaar|handgemaakt|"
        "hypoallergeen|geboortesteen;925 sterling zilver|18K verguld|roestvrij staal|14 karaat witgoud|"
        "14 karaat geelgoud|rosé verguld|titanium|platina;zirkonia|Swarovski kristallen|zoetwaterparel|diamant|"
        "saffier|amethist|opaal|smaragd",
        "it": "Collana con ciondolo|Catenina|Orecchini a lobo|Orecchini a cerchio|Orecchini pendenti|"
        "Anello di fidanzamento|Veretta|Anello con sigillo|Bracciale con charm|Bracciale rigido|"
        "Bracciale tennis|Cavigliera|Spilla|Gemelli|Medaglione|Girocollo|Charm|Anello solitario;cuore|infinito|"
        "personalizzato|minimalista|vintage|regolabile|impilabile|fatto a mano|anallergico|portafortuna;"
        "in argento 925|placcato oro 18k|in acciaio inossidabile|in oro bianco 14k|in oro giallo 9k|"
        "placcato oro rosa|in titanio|in platino;zirconi|cristalli Swarovski|perla d'acqua dolce|diamante|"
        "zaffiro|ametista|opale|smeraldo",
        "es": "Collar con colgante|Cadena|Pendientes de botón|Pendientes de aro|Pendientes largos|"
        "Anillo de compromiso|Alianza|Sello|Pulsera de charms|Brazalete|Pulsera tenis|Tobillera|Broche|Gemelos|"
        "Guardapelo|Gargantilla|Charm|Anillo solitario;corazón|infinito|personalizado|minimalista|vintage|"
        "ajustable|apilable|hecho a mano|hipoalergénico|de la suerte;de plata de ley 925|chapado en oro 18k|"
        "de acero inoxidable|de oro blanco 14k|de oro amarillo 9k|chapado en oro rosa|de titanio|de platino;"
        "circonitas|cristales Swarovski|perla de agua dulce|diamante|zafiro|amatista|ópalo|esmeralda",
        "ja": "ネックレス|チェーンネックレス|スタッドピアス|フープピアス|ドロップピアス|婚約指輪|エタニティリング|"
        "印台リング|チャームブレスレット|バングル|テニスブレスレット|アンクレット|ブローチ|カフスボタン|ロケットペンダント|"
        "チョーカー|チャーム|ソリティアリング;ハート|インフィニティ|名入れ|シンプル|ヴィンテージ|サイズ調整可能|重ね付け|"
        "ハンドメイド|金属アレルギー対応|誕生石;シルバー925|18金メッキ|ステンレス|K14ホワイトゴールド|"
        "K10イエローゴールド|ピンクゴールド|チタン|プラチナ;キュービックジルコニア|スワロフスキー|淡水パール|"
        "ダイヤモンド|サファイア|アメジスト|オパール|エメラルド",
    },
    "Shoes": {
        "en": "Running Shoes|Trainers|Sneakers|Hiking Boots|Chelsea Boots|Ankle Boots|Loafers|Sandals|"
        "Flip Flops|Ballet Flats|High Heels|Pumps|Slippers|Oxford Shoes|Football Boots|Walking Shoes|"
        "Espadrilles|Mules|Wellington Boots|Court Shoes;Lightweight|Waterproof|Breathable|Slip-On|Lace-Up|"
        "Non-Slip|Cushioned|Wide Fit|Low-Top|High-Top|Memory Foam|Classic|Casual;Leather|Suede|Mesh|Canvas|"
        "Nubuck|Patent Leather|Synthetic|Knit",
        "de": "Laufschuhe|Turnschuhe|Sneaker|Wanderschuhe|Chelsea Boots|Stiefeletten|Halbschuhe|Sandalen|"
        "Badelatschen|Ballerinas|Pumps|Hausschuhe|Schnürschuhe|Fußballschuhe|Gummistiefel|Winterstiefel|Clogs|"
        "Pantoletten|Slipper|Trekkingschuhe;leicht|wasserdicht|atmungsaktiv|gefüttert|rutschfest|bequem|"
        "klassisch|sportlich|elegant|Weite H|mit Klettverschluss|Low-Top;Leder|Wildleder|Mesh|Canvas|"
        "Nubukleder|Lackleder|Textil|Strick",
        "fr": "Chaussures de course|Baskets|Chaussures de randonnée|Bottines|Boots|Mocassins|Sandales|Tongs|"
        "Ballerines|Escarpins|Chaussons|Derbies|Chaussures de football|Bottes de pluie|Espadrilles|Mules|Sabots|"
        "Chaussures de marche;légères|imperméables|respirantes|antidérapantes|confortables|classiques|fourrées|"
        "à lacets|à talon|montantes|basses;en cuir|en daim|en mesh|en toile|en nubuck|en cuir verni|"
        "synthétique|en tricot",
        "nl": "Hardloopschoenen|Sneakers|Wandelschoenen|Enkellaarsjes|Chelsea boots|Instappers|Sandalen|"
        "Slippers|Ballerina's|Pumps|Pantoffels|Veterschoenen|Voetbalschoenen|Regenlaarzen|Espadrilles|"
        "Muiltjes|Klompen|Laarzen;lichtgewicht|waterdicht|ademend|gevoerd|antislip|comfortabel|klassiek|"
        "sportief|elegant|hoog|laag;leer|suède|mesh|canvas|nubuck|lakleer|textiel|gebreid",
        "it": "Scarpe da corsa|Sneakers|Scarpe da trekking|Stivaletti|Mocassini|Sandali|Infradito|Ballerine|"
        "Décolleté|Pantofole|Scarpe stringate|Scarpe da calcio|Stivali da pioggia|Espadrillas|Sabot|Stivali;"
        "leggere|impermeabili|traspiranti|antiscivolo|comode|classiche|eleganti|sportive|imbottite|alte|basse;"
        "in pelle|in camoscio|in mesh|in tela|in nabuk|in vernice|in tessuto|in maglia",
        "es": "Zapatillas de running|Zapatillas|Botas de montaña|Botines|Mocasines|Sandalias|Chanclas|"
        "Bailarinas|Zapatos de tacón|Zapatillas de casa|Zapatos con cordones|Botas de fútbol|Botas de agua|"
        "Alpargatas|Zuecos|Botas;ligeras|impermeables|transpirables|antideslizantes|cómodas|clásicas|elegantes|"
        "deportivas|acolchadas|altas|bajas;de piel|de ante|de malla|de lona|de nobuk|de charol|sintéticas|"
        "de punto",
        "ja": "ランニングシューズ|スニーカー|トレッキングシューズ|ショートブーツ|チェルシーブーツ|ローファー|サンダル|"
        "ビーチサンダル|バレエシューズ|パンプス|スリッパ|革靴|サッカースパイク|レインブーツ|スリッポン|ブーツ|"
        "ウォーキングシューズ;軽量|防水|通気性|滑り止め|幅広|厚底|ローカット|ハイカット|クッション性|履きやすい;"
        "本革|スエード|メッシュ|キャンバス|合成皮革|ニット",
    },
}
_COMMON = {k: dict(zip(_CFIELDS, (f.split("|") for f in v.split(";")), strict=True)) for k, v in _COMMON_RAW.items()}
_VOCAB = [{lang: [f.split("|") for f in s.split(";")] for lang, s in _VOCAB_RAW[c].items()} for c in LABEL_NAMES]
_SEPS = (" ", " ", " ", " ", ", ", " - ", " | ", " / ")
_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_CLOTH = ("XS", "S", "M", "L", "XL", "XXL", "3XL")
_AGES = ((0, 3), (3, 6), (6, 9), (6, 12), (12, 18), (18, 24), (0, 6))
_COUNTS = (2, 2, 3, 3, 4, 5, 6, 10, 12, 20, 50, 100)
# Per category: attribute kinds with their probability of appearing in a cluster's core product.
_ATTR_P = (
    (("fit", 0.7), ("spec", 0.6), ("mat", 0.25), ("pack", 0.2), ("col", 0.1)),
    (("size", 0.6), ("col", 0.4), ("mat", 0.5), ("pack", 0.3), ("code", 0.15)),
    (("by", 0.9), ("fmt", 0.75), ("year", 0.4), ("isbn", 0.25)),
    (("col", 0.85), ("size", 0.75), ("mat", 0.55), ("code", 0.3), ("pack", 0.08)),
    (("mat", 0.9), ("stone", 0.6), ("size", 0.4), ("col", 0.2), ("code", 0.25)),
    (("col", 0.85), ("size", 0.75), ("mat", 0.5), ("code", 0.4)),
)
